"""Turns per-window speech probabilities into speech start, pause and stop decisions.

Decisions are made in audio time (windows counted), not wall time, so they are
deterministic and independent of how fast audio arrives.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class VadEvent(enum.Enum):
    START = "start"  # speech confirmed (after start_secs of speech)
    PAUSE = "pause"  # first silent window during speech: the earliest possible end
    RESUME = "resume"  # speech again after a PAUSE, before STOP
    STOP = "stop"  # silence confirmed (after stop_secs of silence)


@dataclass(slots=True)
class VadParams:
    threshold: float = 0.5
    start_secs: float = 0.1
    stop_secs: float = 0.3


class VadSegmenter:
    def __init__(self, params: VadParams, window_secs: float) -> None:
        self.params = params
        self.window_secs = window_secs
        self._start_windows = max(1, round(params.start_secs / window_secs))
        self._stop_windows = max(1, round(params.stop_secs / window_secs))
        self._release = max(0.0, params.threshold - 0.15)  # hysteresis
        self.speaking = False
        self._run = 0
        self._paused = False
        self.last_voiced_index = -1  # index of the last window judged speech

    def process(self, index: int, prob: float) -> VadEvent | None:
        """Feed window number `index`; return the decision it triggers, if any."""
        if not self.speaking:
            if prob >= self.params.threshold:
                self._run += 1
                self.last_voiced_index = index
                if self._run >= self._start_windows:
                    self.speaking = True
                    self._run = 0
                    self._paused = False
                    return VadEvent.START
            else:
                self._run = 0
            return None
        if prob >= self._release:
            self.last_voiced_index = index
            self._run = 0
            if self._paused:
                self._paused = False
                return VadEvent.RESUME
            return None
        self._run += 1
        if self._run >= self._stop_windows:
            self.speaking = False
            self._run = 0
            self._paused = False
            return VadEvent.STOP
        if not self._paused:
            self._paused = True
            return VadEvent.PAUSE
        return None

    @property
    def start_windows(self) -> int:
        return self._start_windows
