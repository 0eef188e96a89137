"""Streaming sample-rate conversion.

Uses soxr (libsoxr): a well-kept, high-quality resampler whose streaming mode keeps
filter state between chunks, so 20 ms frames resample without clicks at the seams.
"""

from __future__ import annotations

import numpy as np
import soxr

SUPPORTED_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


class StreamResampler:
    """PCM16 in at one rate, PCM16 out at another; identity when the rates match."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate not in SUPPORTED_RATES or out_rate not in SUPPORTED_RATES:
            raise ValueError(
                f"unsupported sample rate {in_rate}->{out_rate}; supported: {SUPPORTED_RATES}"
            )
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        )

    def process(self, pcm: bytes, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        x = np.frombuffer(pcm, dtype="<i2")
        return bytes(self._stream.resample_chunk(x, last=last).astype("<i2").tobytes())


def resample(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """One-shot conversion of a whole buffer."""
    if in_rate == out_rate:
        return pcm
    x = np.frombuffer(pcm, dtype="<i2")
    return bytes(soxr.resample(x, in_rate, out_rate, quality="HQ").astype("<i2").tobytes())
