"""espeak-ng text-to-speech: WAV parsing, streaming, errors, round trip through Whisper."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from callwright.audio.pcm import pcm16_to_float
from callwright.audio.resample import resample
from callwright.engines.base import EngineError, TTSEngine
from callwright.engines.espeak_tts import EspeakTTS, WavStreamParser
from callwright.engines.registry import get_factory


def words_of(text: str) -> str:
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower())


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def test_wav_parser_streams_data_fed_in_any_pieces() -> None:
    samples = (np.arange(1001) * 7 % 2000 - 1000).astype("<i2")
    data = _wav(samples, 22050)
    for step in (1, 5, 44, 4096):
        parser = WavStreamParser()
        out = b"".join(parser.feed(data[i : i + step]) for i in range(0, len(data), step))
        assert parser.sample_rate == 22050
        assert out == samples.tobytes()


def test_wav_parser_rejects_non_wav() -> None:
    with pytest.raises(EngineError):
        WavStreamParser().feed(b"this is not a RIFF stream")


def test_missing_executable_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match="apt-get install espeak-ng"):
        EspeakTTS(executable="espeak-ng-not-installed")


async def _collect(tts: TTSEngine, text: str, voice: str | None = None) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text, voice=voice)]


async def test_streams_pcm16_at_22050(need_espeak: str) -> None:
    tts = get_factory("tts", "espeak")()
    assert isinstance(tts, TTSEngine)
    assert tts.sample_rate == 22050
    chunks = await _collect(tts, "Hello there. Thank you for calling Bright Smile Dental.")
    assert len(chunks) > 1  # streamed, not one blob at the end
    assert all(len(c) % 2 == 0 for c in chunks)
    audio = np.frombuffer(b"".join(chunks), "<i2")
    assert 1.5 < len(audio) / 22050 < 8
    assert np.abs(audio).max() > 1000  # not silence


async def test_resamples_to_a_requested_rate(need_espeak: str) -> None:
    text = "Testing the sample rate."
    wide = b"".join(await _collect(EspeakTTS(), text))
    narrow = b"".join(await _collect(EspeakTTS(sample_rate=16000), text))
    assert abs(len(narrow) / 2 / 16000 - len(wide) / 2 / 22050) < 0.05


async def test_unknown_voice_raises(need_espeak: str) -> None:
    with pytest.raises(EngineError, match="espeak-ng failed"):
        await _collect(EspeakTTS(), "hello", voice="nonexistent")


async def test_text_starting_with_a_dash_is_spoken(need_espeak: str) -> None:
    assert b"".join(await _collect(EspeakTTS(), "--help me please"))


async def test_closing_early_then_next_request_is_whole(need_espeak: str) -> None:
    tts = EspeakTTS()
    it = tts.synthesize("This is a long utterance that will be cut off. " * 20)
    first = await it.__anext__()
    assert first
    await it.aclose()
    again = b"".join(await _collect(tts, "Goodbye."))
    assert 0.3 < len(again) / 2 / 22050 < 3


@pytest.mark.models
async def test_round_trip_through_whisper(need_espeak: str) -> None:
    pytest.importorskip("faster_whisper", reason="the [embedded] extra is not installed")
    from callwright.engines.whisper_asr import WhisperASR

    tts = EspeakTTS()
    pcm = b"".join(await _collect(tts, "Please call me back tomorrow morning."))
    audio = pcm16_to_float(resample(pcm, 22050, 16000))
    asr = WhisperASR()
    try:
        text = words_of((await asr.transcribe(audio)).text)
    finally:
        await asr.aclose()
    assert "call" in text and "tomorrow" in text
