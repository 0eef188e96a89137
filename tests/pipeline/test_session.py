"""VoiceSession behaviour with the zero-cost engines and a loudness VAD, in real time."""

from __future__ import annotations

import asyncio
import itertools
import math

import numpy as np
import pytest

from callwright.engines.base import LLMDelta
from callwright.engines.scripted import ScriptedASR, ScriptedLLM
from callwright.pipeline.endpointing import TranscriptEndpointing
from tests.helpers.voice_session import REPLY, silence, tone


async def test_one_turn_end_to_end(make_session):
    h = await make_session()
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=10)
    finals = [e for e in h.out.of("transcript") if e.final]
    assert [e.text for e in finals] == ["what time do you open on saturday"]
    assert " ".join(e.text for e in h.out.of("agent_text")) == REPLY
    assert h.out.audio, "agent audio was sent"
    # all agent audio is 20 ms frames of PCM16 at 16 kHz
    assert {len(pcm) for _, pcm in h.out.audio} == {640}
    metrics = h.out.of("turn_metrics")[0].metrics
    assert not metrics.interrupted
    assert metrics.late_frames == 0  # an idle loop sends every frame in time
    assert h.out.of("turn_metrics")[0].to_dict()["late_frames"] == 0
    for name in (
        "speech_end",
        "vad_stop",
        "asr_final",
        "end_of_turn",
        "llm_first_token",
        "tts_first_audio",
        "first_audio_out",
    ):
        assert getattr(metrics, name) is not None, name
    b = metrics.breakdown()
    # in virtual time with zero-cost engines, the reply's only delay is the VAD's: the
    # 9 silent windows of stop_secs (0.3 s in 32 ms windows) end 280 ms after the frame
    # that carried the last voiced window; the final, the LLM and TTS take no time
    assert b["vad_stop_ms"] == 280.0
    assert b["asr_final_ms"] == b["end_of_turn_ms"] == b["first_audio_out_ms"] == 280.0
    msgs = [(m.role, m.content) for m in h.session.conversation.messages]
    assert msgs == [("user", "what time do you open on saturday"), ("assistant", REPLY)]
    assert await h.stop() == "caller_hangup"
    assert h.out.of("end")[0].reason == "caller_hangup"


async def test_audio_is_paced_in_real_time(make_session):
    h = await make_session()
    await h.feed(tone(0.8) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=10)
    times = [t for t, _ in h.out.audio]
    # the first 5 frames go at once (80 ms lead), then one every 20 ms, no gap between
    # clauses: exactly the reply's length of audio in real time
    t0 = times[0]
    assert times == pytest.approx([t0 + max(0, k - 4) * 0.02 for k in range(len(times))])
    # ScriptedTTS speaks 14 characters a second; each clause ends on a padded frame
    assert len(times) == sum(math.ceil(int(len(t) / 14 * 16000) / 320) for t in _clauses(h))
    assert h.session.pacer_stats.late_frames == 0


async def test_greeting_is_spoken_first(make_session):
    h = await make_session(greeting="Hello, this is the clinic.")
    await h.feed_until("agent_speech_ended", within=5)
    assert " ".join(e.text for e in h.out.of("agent_text")) == "Hello, this is the clinic."
    assert h.session.conversation.messages[0].content == "Hello, this is the clinic."
    assert h.out.of("turn_metrics") == []  # greetings are not reply turns


async def test_barge_in_stops_audio_and_truncates_history(make_session):
    h = await make_session(interruption_min_secs=0.4, interruption_min_words=1)
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(silence(0.6))  # let some of the reply play
    barge_at = asyncio.get_running_loop().time()
    await h.feed(tone(1.2))
    event = await h.out.wait_for("interruption", within=3)
    stopped = h.out.first_time("interruption")
    # VAD start (3 windows, ~0.1 s) + interruption_min_secs (0.4 s); the words are
    # decoded at once by the scripted recogniser
    assert stopped is not None and stopped - barge_at == pytest.approx(0.5)
    assert h.out.clears, "the transport was told to drop buffered audio"
    sent_after = [t for t, _ in h.out.audio if t > stopped + 0.05]
    assert sent_after == [], "no agent audio after the interruption"
    heard = event.heard_text
    assert heard and REPLY.startswith(heard) and len(heard) < len(REPLY)
    assistant = [m for m in h.session.conversation.messages if m.role == "assistant"]
    assert assistant[0].content == heard
    metrics = h.out.of("turn_metrics")[0].metrics
    assert metrics.interrupted
    # the barge-in speech becomes the next user turn
    await h.feed(silence(0.5))
    await h.feed_until("agent_speech_started", within=10)
    assert len([e for e in h.out.of("transcript") if e.final]) == 2


async def test_short_noise_does_not_interrupt(make_session):
    h = await make_session(interruption_min_secs=0.5)
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(tone(0.25) + silence(0.3))  # a cough
    await h.feed_until("agent_speech_ended", within=10)
    assert h.out.of("interruption") == []
    assert h.session.conversation.messages[-1].content == REPLY


async def test_backchannel_does_not_interrupt(make_session):
    # whatever the caller says over the agent is heard as "mhm yeah"
    h = await make_session(
        asr=ScriptedASR(text="mhm yeah", words_per_sec=4),
        interruption_min_secs=0.4,
        interruption_min_words=1,
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(tone(0.9) + silence(0.3))
    await h.feed_until("agent_speech_ended", within=10)
    assert h.out.of("interruption") == []


async def test_agent_falls_silent_before_the_words_are_decoded(make_session):
    # a slow recogniser: the decision comes ~0.9 s after the speech reached the minimum
    h = await make_session(
        asr=ScriptedASR(text="wait I have a question", words_per_sec=20, delay_secs=1.0),
        interruption_min_secs=0.4,
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(silence(0.4))
    await h.feed(tone(1.8))
    await h.out.wait_for("interruption", within=3)
    decided = h.out.first_time("interruption")
    assert decided is not None
    # paused at the minimum, so nothing was sent while the words were being decoded
    assert [t for t, _ in h.out.audio if decided - 0.6 < t <= decided] == []
    assert h.out.of("turn_metrics")[0].metrics.interrupted


async def test_backchannel_pauses_the_agent_then_it_resumes_where_it_stopped(make_session):
    # the first decode (begun at the speech start) answers 0.3 s after the minimum
    h = await make_session(
        asr=ScriptedASR(text="mhm yeah", words_per_sec=4, delay_secs=0.6),
        interruption_min_secs=0.3,
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(silence(0.3))
    await h.feed(tone(1.0) + silence(0.3))
    await h.feed_until("agent_speech_ended", within=10)
    assert h.out.of("interruption") == []
    times = [t for t, _ in h.out.audio]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) > 0.2, "the agent paused while the words were decoded"
    # nothing was dropped: the whole reply was sent and kept in the history
    tts_secs = len(REPLY.replace(" ", "")) / 14  # ScriptedTTS speaks 14 characters a second
    assert len(times) * 0.02 >= tts_secs * 0.9
    assert h.session.conversation.messages[-1].content == REPLY
    assert h.out.of("turn_metrics")[0].metrics.late_frames == 0  # the pause is not lateness


async def test_no_pause_when_disabled(make_session):
    h = await make_session(
        asr=ScriptedASR(text="mhm yeah", words_per_sec=4, delay_secs=0.6),
        interruption_min_secs=0.3,
        pause_while_deciding=False,
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(silence(0.3))
    await h.feed(tone(1.0) + silence(0.3))
    await h.feed_until("agent_speech_ended", within=10)
    times = [t for t, _ in h.out.audio]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.2


async def test_interrupt_on_duration_alone_when_words_not_required(make_session):
    h = await make_session(
        asr=ScriptedASR(text="mhm"), interruption_min_secs=0.3, interruption_min_words=0
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(tone(0.6))
    await h.out.wait_for("interruption", within=3)


async def test_pause_mid_sentence_is_not_cut_off(make_session):
    # the first part of the sentence ends on "for": the caller is not done
    h = await make_session(
        asr=ScriptedASR(text="book an appointment for", words_per_sec=4),
        endpointing=TranscriptEndpointing(0.0, 0.8),
    )
    await h.feed(tone(1.2) + silence(0.55) + tone(0.8) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=10)
    finals = [e for e in h.out.of("transcript") if e.final]
    assert len(finals) == 1, "one turn, not cut at the pause"
    assert len(h.out.of("agent_speech_started")) == 1


async def test_complete_sentence_answers_without_extra_wait(make_session):
    h = await make_session(asr=ScriptedASR(text="yes please book it."), speculative=False)
    await h.feed(tone(0.8) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed_until("turn_metrics", within=10)
    metrics = h.out.of("turn_metrics")[0].metrics
    assert metrics.end_of_turn - metrics.vad_stop < 0.1


async def test_speculative_reply_is_cancelled_when_caller_goes_on(make_session):
    h = await make_session(
        asr=ScriptedASR(text="I would like to", words_per_sec=4),
        endpointing=TranscriptEndpointing(0.0, 1.0),
        speculative=True,
    )
    await h.feed(tone(1.0) + silence(0.5) + tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=10)
    assert len(h.out.of("agent_speech_started")) == 1
    assert len([e for e in h.out.of("transcript") if e.final]) == 1


async def test_idle_reprompt_then_hangup(make_session):
    h = await make_session(idle_reprompt_secs=0.6, idle_hangup_secs=1.8)
    await h.feed_until("end", within=10)
    texts = " ".join(e.text for e in h.out.of("agent_text"))
    assert texts == "Are you still there? It seems you have stepped away. Goodbye!"
    assert h.out.of("end")[0].reason == "idle_timeout"
    assert await asyncio.wait_for(h.task, 2) == "idle_timeout"


class FailingLLM:
    name = "failing"

    async def stream(self, messages, **kwargs):
        yield LLMDelta(text="Let me check. ")
        raise ConnectionError("provider is down")


async def test_dead_llm_reports_error_and_session_survives(make_session):
    h = await make_session(llm=FailingLLM())
    await h.feed(tone(0.8) + silence(0.2))
    await h.feed_until("error", within=5)
    err = h.out.of("error")[0]
    assert err.code == "reply_failed" and "provider is down" in err.message
    # the session still takes the next turn
    await h.feed(silence(0.3) + tone(0.8) + silence(0.2))
    await h.feed_until("transcript", within=5)
    assert not h.task.done()


async def test_llm_stream_is_closed_on_barge_in(make_session):
    closed = asyncio.Event()

    class SlowLLM:
        name = "slow"

        async def stream(self, messages, **kwargs):
            try:
                for word in ("One, two, three, four. " * 20).split(" "):
                    yield LLMDelta(text=word + " ")
                    await asyncio.sleep(0.05)
            finally:
                closed.set()

    h = await make_session(llm=SlowLLM(), interruption_min_secs=0.3)
    await h.feed(tone(0.8) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(tone(0.8))
    await h.out.wait_for("interruption", within=3)
    await asyncio.wait_for(closed.wait(), 1)


async def test_speech_over_the_end_of_a_reply_becomes_the_next_turn(make_session):
    # the reply is short; the caller starts just before it ends and talks on after it
    h = await make_session(
        llm=_fixed_llm("Yes."), interruption_min_secs=2.0, interruption_min_words=1
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    await h.feed(tone(1.5) + silence(0.2))
    await h.feed_until("transcript", within=5)
    await h.feed_until("agent_speech_ended", within=10)
    await h.feed(silence(0.5))
    await h.feed_until("turn_metrics", within=10)
    await h.feed(silence(1.0))
    finals = [e for e in h.out.of("transcript") if e.final]
    assert len(finals) == 2, "the caller's second utterance was taken as a turn"
    assert h.out.of("interruption") == []


def _fixed_llm(text: str) -> object:
    class Fixed:
        name = "fixed"

        async def stream(self, messages, **kwargs):
            yield LLMDelta(text=text)
            yield LLMDelta(finish_reason="stop")

    return Fixed()


class FrontLoadedTTS:
    """Speaks 0.5 s per word, its first word taking 60% of each piece, and says so."""

    name = "front-loaded"
    sample_rate = 16000

    async def synthesize(self, text, *, voice=None):
        async for piece in self.synthesize_timed(text, voice=voice):
            yield piece.pcm

    async def synthesize_timed(self, text, *, voice=None):
        from callwright.engines.base import TimedAudio

        n = len(text.split())
        total = int(0.5 * n * self.sample_rate)
        first = int(total * 0.6)
        rest = [first + (total - first) * (k + 1) // (n - 1) for k in range(n - 1)]
        audio = (np.sin(np.arange(total) * 0.1) * 3000).astype("<i2").tobytes()
        yield TimedAudio(audio, (first, *rest))


async def test_barge_in_history_keeps_the_words_the_timings_say_were_heard(make_session):
    h = await make_session(
        llm=ScriptedLLM(reply="Absolutely wonderful tremendous excellent news today. Goodbye now."),
        tts=FrontLoadedTTS(),
        interruption_min_secs=0.3,
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    # ~1.4 s of a 3 s first piece will have played (the agent pauses at the minimum);
    # its first word ends at 1.8 s
    await h.feed(silence(0.9))
    await h.feed(tone(1.0))
    event = await h.out.wait_for("interruption", within=3)
    assert event.heard_text == "", event.heard_text  # an even spread would say 1-2 words


async def test_speech_not_yet_recognised_keeps_the_pause_until_it_stops(make_session):
    asr = ScriptedASR(text="what time do you open on saturday", words_per_sec=20)
    h = await make_session(asr=asr, interruption_min_secs=0.3)
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=10)
    asr.words = []  # what the caller says over the agent: no words recognised in it
    await h.feed(silence(0.3))
    noise_at = asyncio.get_running_loop().time()
    await h.feed(tone(1.2))
    # held for the whole noise, not resumed at the first empty decode
    assert [t for t, _ in h.out.audio if noise_at + 0.6 < t < noise_at + 1.2] == []
    await h.feed(silence(0.4))
    await h.feed_until("agent_speech_ended", within=10)
    assert h.out.of("interruption") == []
    assert h.session.conversation.messages[-1].content == REPLY


def _clauses(h) -> list[str]:
    return [e.text for e in h.out.of("agent_text")]
