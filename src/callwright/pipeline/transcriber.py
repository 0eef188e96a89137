"""Streaming transcription on top of a batch ASR engine.

Whisper has no native streaming, so partials come from re-decoding the growing
utterance. The trick that matters for latency: a decode is started at the first
silent window (the VAD's PAUSE), so by the time the silence is confirmed the final
is usually already done; the trailing silence adds nothing to the transcript.
"""

from __future__ import annotations

import asyncio

import numpy as np

from callwright.engines.base import ASREngine, Transcript


class Transcriber:
    def __init__(
        self, engine: ASREngine, *, language: str | None, partial_interval_secs: float = 0.6
    ) -> None:
        self.engine = engine
        self.language = language
        self.sample_rate = engine.sample_rate
        self.partial_interval = int(partial_interval_secs * self.sample_rate)
        self._chunks: list[np.ndarray] = []
        self.samples = 0
        self._task: asyncio.Task[Transcript] | None = None
        self._task_covers = 0  # samples the latest decode covers
        self.active = False

    def start(self, preroll: np.ndarray | None = None) -> None:
        self.reset()
        self.active = True
        if preroll is not None and len(preroll):
            self.push(preroll)

    def push(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self.samples += len(samples)

    def reset(self) -> None:
        self._chunks = []
        self.samples = 0
        self._task = None  # a decode in flight finishes on its own; its result is ignored
        self._task_covers = 0
        self.active = False

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def wants_partial(self) -> bool:
        return (
            self.partial_interval > 0
            and not self.busy
            and self.samples - self._task_covers >= self.partial_interval
        )

    def decode(self) -> asyncio.Task[Transcript]:
        """Start decoding everything heard so far (a partial, or the final if speech ends)."""
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        self._chunks = [audio]
        self._task = asyncio.ensure_future(self.engine.transcribe(audio, language=self.language))
        self._task_covers = self.samples
        return self._task

    def final_task(self, needed_samples: int) -> asyncio.Task[Transcript]:
        """A decode covering at least `needed_samples`: the speculative one if it does."""
        if (
            self._task is not None
            and self._task_covers >= needed_samples
            and not (self._task.done() and self._task.exception() is not None)
        ):
            return self._task
        return self.decode()
