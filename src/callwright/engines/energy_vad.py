"""A loudness gate: the cheapest possible VAD, for noise-free lines and load tests."""

from __future__ import annotations

import numpy as np

from callwright.engines.registry import register


class _EnergyStream:
    def __init__(self, threshold_dbfs: float) -> None:
        self._threshold = threshold_dbfs

    def probability(self, window: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(np.square(window, dtype=np.float32)))) + 1e-9
        dbfs = 20.0 * np.log10(rms)
        # a soft ramp over 10 dB around the threshold keeps hysteresis meaningful
        return float(np.clip((dbfs - self._threshold) / 10.0 + 0.5, 0.0, 1.0))


class EnergyVADEngine:
    name = "energy"
    sample_rate = 16000
    window_samples = 512

    def __init__(self, threshold_dbfs: float = -40.0) -> None:
        self.threshold_dbfs = threshold_dbfs

    def open_stream(self) -> _EnergyStream:
        return _EnergyStream(self.threshold_dbfs)


@register("vad", "energy")
def create(threshold_dbfs: float = -40.0) -> EnergyVADEngine:
    return EnergyVADEngine(threshold_dbfs)
