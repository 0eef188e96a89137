"""PCM16 helpers: conversions and fixed-size framing of a byte stream."""

from __future__ import annotations

import numpy as np

SAMPLE_WIDTH = 2  # bytes per PCM16 sample
# The one rate audio has inside the pipeline (VAD, ASR, recordings): transports resample
# their peers' audio to it, and the agent's back from the TTS's own rate.
PIPELINE_RATE = 16000


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    """Little-endian PCM16 bytes to float32 in [-1, 1]."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    clipped = np.clip(samples, -1.0, 32767.0 / 32768.0)
    return (clipped * 32768.0).astype("<i2").tobytes()


class Reframer:
    """Cuts an arbitrary stream of PCM16 bytes into frames of exactly `frame_samples`.

    Transports deliver whatever chunk sizes their peers send; every stage downstream
    expects fixed frames (VAD windows, 20 ms output frames).
    """

    def __init__(self, frame_samples: int) -> None:
        self.frame_bytes = frame_samples * SAMPLE_WIDTH
        self._buf = bytearray()

    def push(self, pcm: bytes) -> list[bytes]:
        self._buf += pcm
        n = len(self._buf) // self.frame_bytes
        if n == 0:
            return []
        cut = n * self.frame_bytes
        data = bytes(self._buf[:cut])
        del self._buf[:cut]
        fb = self.frame_bytes
        return [data[i : i + fb] for i in range(0, cut, fb)]

    def flush(self) -> bytes | None:
        """Return the remainder padded with silence to a whole frame, if any."""
        if not self._buf:
            return None
        data = bytes(self._buf) + bytes(self.frame_bytes - len(self._buf))
        self._buf.clear()
        return data

    @property
    def pending(self) -> int:
        return len(self._buf)
