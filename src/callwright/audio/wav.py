"""WAV file reading and writing (mono or stereo PCM16) with the standard library."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """Return (mono PCM16 bytes, sample rate); stereo is mixed down, 8-bit and 32-bit refused."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(
                f"{path}: only 16-bit PCM WAV is supported (got {8 * w.getsampwidth()}-bit)"
            )
        rate = w.getframerate()
        channels = w.getnchannels()
        data = w.readframes(w.getnframes())
    if channels > 1:
        x = np.frombuffer(data, dtype="<i2").reshape(-1, channels).astype(np.int32)
        data = (x.mean(axis=1)).astype("<i2").tobytes()
    return data, rate


def write_wav(path: str | Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)


def wav_bytes(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()
