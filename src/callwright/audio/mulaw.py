"""G.711 μ-law codec for telephony media streams (Twilio, Telnyx PCMU).

Hand-written with lookup tables because the standard library's audioop is gone in
Python 3.13; the codec is a fixed 60-year-old formula, cheap to get exactly right.
"""

from __future__ import annotations

import numpy as np

_BIAS = 0x84
_CLIP = 32635


def _build_decode_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for i in range(256):
        u = ~i & 0xFF
        sign = u & 0x80
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        magnitude = ((mantissa << 3) + _BIAS) << exponent
        sample = magnitude - _BIAS
        table[i] = -sample if sign else sample
    return table


def _build_encode_table() -> np.ndarray:
    table = np.zeros(65536, dtype=np.uint8)
    for i in range(65536):
        sample = i - 32768
        sign = 0x80 if sample < 0 else 0
        magnitude = min(-sample if sample < 0 else sample, _CLIP) + _BIAS
        exponent = 7
        mask = 0x4000
        while exponent > 0 and not (magnitude & mask):
            exponent -= 1
            mask >>= 1
        mantissa = (magnitude >> (exponent + 3)) & 0x0F
        table[i] = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return table


_DECODE = _build_decode_table()
_ENCODE = _build_encode_table()


def ulaw_decode(data: bytes) -> bytes:
    """μ-law bytes to little-endian PCM16 bytes (same rate, 2x the size)."""
    return bytes(_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes())


def ulaw_encode(pcm: bytes) -> bytes:
    """Little-endian PCM16 bytes to μ-law bytes."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    return bytes(_ENCODE[samples].tobytes())
