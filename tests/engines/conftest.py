"""Shared fixtures for the engine tests: test speech made with espeak-ng and sox."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from callwright.audio.pcm import pcm16_to_float
from callwright.audio.wav import read_wav
from tests.helpers.audio import SpeechMaker, make_speech


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechMaker:
    """`speech(text, voice="en-us", rate=150, phone=False)` -> 16 kHz float32 utterance.

    `phone=True` band-limits to 300-3400 Hz, like a phone line, so recognition tests
    do not pass only on clean wideband audio.
    """
    root = tmp_path_factory.mktemp("speech")
    counter = iter(range(1_000_000))

    def make(text: str, voice: str = "en-us", rate: int = 150, phone: bool = False) -> np.ndarray:
        path = make_speech(
            text, root / f"{next(counter)}.wav", voice=voice, speed=rate, phone=phone, pad_secs=0.0
        )
        pcm, _ = read_wav(path)
        return pcm16_to_float(pcm)

    return make


@pytest.fixture(scope="session")
def need_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng (Debian package) is not installed")
    return exe
