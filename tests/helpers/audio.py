"""Test audio: speech made with espeak-ng and sox, and plain tones that voice-detect."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np

from callwright.audio.wav import write_wav

from .system import need_tools


def make_speech(
    text: str,
    path: Path,
    *,
    voice: str = "en-us",
    speed: int = 150,
    rate: int = 16000,
    phone: bool = False,
    pad_secs: float = 0.3,
) -> Path:
    """Speak `text` with espeak-ng into a mono PCM16 WAV at `rate`, trailing silence added.

    `phone=True` band-limits it like a phone line (300-3400 Hz) so tests do not pass
    only on clean wideband audio.
    """
    need_tools("espeak-ng", "sox")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    effects = ["sinc", "300-3400"] if phone else []
    subprocess.run(
        [
            "sox",
            str(raw),
            "-r",
            str(rate),
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            *effects,
            "pad",
            "0",
            str(pad_secs),
        ],
        check=True,
    )
    raw.unlink()
    return path


def tone_wav(path: Path, secs: float = 1.0, rate: int = 16000, tail: float = 0.1) -> Path:
    """A 300 Hz tone then `tail` seconds of silence: the energy VAD hears a turn, with
    no speech tools needed."""
    t = np.arange(int(secs * rate)) / rate
    x = (np.sin(2 * np.pi * 300 * t) * 6000).astype("<i2").tobytes() + bytes(int(tail * rate) * 2)
    write_wav(path, x, rate)
    return path


# The engine tests' `speech` fixture: (text, voice=, rate=, phone=) -> 16 kHz float32.
SpeechMaker = Callable[..., np.ndarray]
