"""Whisper tiny.en through faster-whisper on espeak-ng speech."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from callwright.engines.base import ASREngine, EngineError
from callwright.engines.registry import get_factory
from tests.helpers.audio import SpeechMaker

pytestmark = pytest.mark.models


def words_of(text: str) -> str:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower())


BOOKING = "I would like to book an appointment for next Tuesday morning."
NAME = "My name is John Smith and I need a new prescription."


@pytest.fixture(scope="module")
def asr() -> Iterator[ASREngine]:
    pytest.importorskip("faster_whisper", reason="the [embedded] extra is not installed")
    engine = get_factory("asr", "whisper")()
    yield engine
    engine._executor.shutdown(wait=True)


@pytest.mark.parametrize(
    ("voice", "rate", "phone"),
    [("en-us", 150, False), ("en-us+f3", 160, False), ("en-gb", 140, True)],
)
async def test_transcribes_key_words(
    asr: ASREngine, speech: SpeechMaker, voice: str, rate: int, phone: bool
) -> None:
    assert asr.sample_rate == 16000
    result = await asr.transcribe(speech(BOOKING, voice=voice, rate=rate, phone=phone))
    words = words_of(result.text)
    for key in ("appointment", "tuesday", "morning"):
        assert key in words, result.text
    assert result.language == "en"
    assert result.confidence is not None and 0 < result.confidence <= 1


async def test_concurrent_requests_are_serialised_and_both_right(
    asr: ASREngine, speech: SpeechMaker
) -> None:
    a, b = await asyncio.gather(asr.transcribe(speech(BOOKING)), asr.transcribe(speech(NAME)))
    assert "appointment" in words_of(a.text)
    assert "prescription" in words_of(b.text) and "smith" in words_of(b.text)


async def test_decoding_does_not_block_the_event_loop(asr: ASREngine, speech: SpeechMaker) -> None:
    audio = speech(BOOKING)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start_ticks = ticks
    result = await asr.transcribe(audio)
    stop.set()
    await task
    assert "appointment" in words_of(result.text)
    assert ticks > start_ticks + 1  # the loop kept running while the decode ran


async def test_caller_may_mutate_its_buffer_during_decode(
    asr: ASREngine, speech: SpeechMaker
) -> None:
    audio = speech(BOOKING)
    pending = asyncio.ensure_future(asr.transcribe(audio))
    await asyncio.sleep(0)
    audio[:] = 0.0  # a pipeline reuses its buffer; the engine decoded its own copy
    assert "appointment" in words_of((await pending).text)


async def test_silence_and_empty_input(asr: ASREngine) -> None:
    assert (await asr.transcribe(np.zeros(0, dtype=np.float32))).text == ""
    quiet = await asr.transcribe(np.zeros(16000, dtype=np.float32))
    assert len(quiet.text.split()) <= 3  # no long hallucination on a second of silence


def test_unknown_model_option_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(EngineError, match="CTranslate2"):
        get_factory("asr", "whisper")(model=str(tmp_path))
