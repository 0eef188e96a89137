"""Shared fixtures for the engine tests: test speech made with espeak-ng and sox."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

SpeechMaker = Callable[..., np.ndarray]


def _read_wav_float(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechMaker:
    """`speech(text, voice="en-us", rate=150, phone=False)` -> 16 kHz float32 utterance.

    `phone=True` band-limits to 300-3400 Hz at 8 kHz first, like a phone line, so
    recognition tests do not pass only on clean wideband audio.
    """
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (Debian package) is not installed: cannot make test speech")
    root = tmp_path_factory.mktemp("speech")
    counter = iter(range(1_000_000))

    def make(text: str, voice: str = "en-us", rate: int = 150, phone: bool = False) -> np.ndarray:
        n = next(counter)
        raw, out = root / f"{n}.wav", root / f"{n}-16k.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(raw)],
            input=text.encode(),
            check=True,
        )
        if phone:
            narrow = root / f"{n}-8k.wav"
            subprocess.run(
                ["sox", str(raw), "-r", "8000", str(narrow), "sinc", "300-3400"], check=True
            )
            raw = narrow
        subprocess.run(
            ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True
        )
        return _read_wav_float(out)

    return make


@pytest.fixture(scope="session")
def need_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng (Debian package) is not installed")
    return exe
