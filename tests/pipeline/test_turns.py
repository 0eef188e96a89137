"""The turn detector with plain arrays: no event loop, no clock, no audio."""

from __future__ import annotations

from callwright.pipeline.endpointing import TranscriptEndpointing
from callwright.pipeline.settings import TurnTaking
from callwright.pipeline.turns import (
    Agent,
    DecodeAtPause,
    DecodeFinal,
    DecodePartial,
    DecoderState,
    EndOfTurn,
    Interrupt,
    PartialText,
    PauseAgent,
    ResumeAgent,
    SpeculativeReply,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
)
from callwright.pipeline.vad import VadParams

WIN = 0.032  # Silero's 512-sample windows at 16 kHz
IDLE = DecoderState()


def detector(**turn: object) -> TurnDetector:
    params = TurnTaking(vad=VadParams(threshold=0.5, start_secs=0.1, stop_secs=0.3), **turn)
    return TurnDetector(params, WIN)


def feed(d: TurnDetector, probs: list[float], agent: Agent = Agent.SILENT, decoder=IDLE):
    """Every decision with the index of the window that made it."""
    out = []
    for p in probs:
        index = d.windows
        out.extend((index, x) for x in d.on_window(p, agent, decoder))
    return out


def kinds(decisions) -> list[str]:
    return [type(x).__name__ for _, x in decisions]


def test_a_turn_start_pause_stop_final_end():
    d = detector()
    got = feed(d, [0.9] * 20 + [0.0] * 9)
    assert kinds(got) == ["SpeechStarted", "DecodeAtPause", "SpeechStopped", "DecodeFinal"]
    (i_start, start), (i_pause, _), (i_stop, stop), (_, final) = got
    assert start == SpeechStarted(continued=False, agent_audible=False)
    assert (i_start, i_pause, i_stop) == (2, 20, 28)  # 3 voiced windows start, 9 silent stop
    assert stop == SpeechStopped(dropped=False) and isinstance(final, DecodeFinal)
    # a complete sentence: the turn ends as soon as the final is known
    assert d.on_final(final.pending, "What time do you open?", Agent.SILENT) == [
        EndOfTurn("What time do you open?")
    ]
    assert d.idle


def test_an_unfinished_sentence_waits_and_the_reply_starts_held():
    d = detector(endpointing=TranscriptEndpointing(0.0, 0.32))
    got = feed(d, [0.9] * 20 + [0.0] * 9)
    final = got[-1][1]
    assert d.on_final(final.pending, "I'd like to book for", Agent.SILENT) == [
        SpeculativeReply("I'd like to book for")
    ]
    # 0.32 s more silence = 10 windows: the turn ends on the 10th
    later = feed(d, [0.0] * 10)
    assert [(i - 29, x) for i, x in later] == [(9, EndOfTurn("I'd like to book for"))]


def test_speech_after_a_stop_continues_the_same_utterance():
    d = detector(endpointing=TranscriptEndpointing(0.0, 1.0))
    got = feed(d, [0.9] * 20 + [0.0] * 9)
    d.on_final(got[-1][1].pending, "book an appointment for", Agent.PREPARING)
    again = feed(d, [0.9] * 5)
    assert [x for _, x in again] == [SpeechStarted(continued=True, agent_audible=False)]
    assert d.pending is None and d.utterance is not None


def test_speech_over_the_agent_pauses_it_then_words_interrupt():
    d = detector(interruption_min_secs=0.4)
    # 3 windows to start, then 0.4 s = 12.5 windows of speech before the decision
    got = feed(d, [0.9] * 16, agent=Agent.AUDIBLE)
    assert kinds(got) == ["SpeechStarted", "PauseAgent", "DecodePartial"]
    assert got[0][1].agent_audible and got[1][0] == 15
    utterance = got[2][1].utterance
    assert d.on_partial(utterance, "wait, stop please") == [
        PartialText("wait, stop please", prefetch=False),  # shown, but no prefetch yet
        Interrupt(),
    ]
    assert utterance.decided


def test_a_backchannel_over_the_agent_resumes_it_and_is_not_a_turn():
    d = detector(interruption_min_secs=0.4)
    got = feed(d, [0.9] * 16, agent=Agent.AUDIBLE)
    utterance = got[-1][1].utterance
    assert d.on_partial(utterance, "mhm yeah") == [PartialText("mhm yeah", False), ResumeAgent()]
    stop = feed(d, [0.0] * 9, agent=Agent.AUDIBLE)
    # it keeps listening ("mhm... actually, wait" may still interrupt), then drops it
    assert kinds(stop) == ["DecodePartial", "SpeechStopped"]
    assert stop[1][1] == SpeechStopped(dropped=True)
    assert d.idle


def test_undecided_speech_stays_paused_until_it_stops():
    d = detector(interruption_min_secs=0.4)
    got = feed(d, [0.9] * 16, agent=Agent.AUDIBLE)
    assert d.on_partial(got[-1][1].utterance, "") == []  # nothing recognised yet: held
    stop = feed(d, [0.0] * 9, agent=Agent.AUDIBLE)
    # the next decode is asked for at once (still speaking until the stop); speech that
    # stops undecided was not an interruption
    assert kinds(stop) == ["DecodePartial", "SpeechStopped", "ResumeAgent"]
    assert stop[1][1] == SpeechStopped(dropped=True)


def test_duration_alone_interrupts_when_no_words_are_required():
    d = detector(interruption_min_secs=0.4, interruption_min_words=0)
    got = feed(d, [0.9] * 16, agent=Agent.AUDIBLE)
    assert kinds(got) == ["SpeechStarted", "Interrupt"]


def test_no_decode_while_one_is_in_flight_and_partials_when_due():
    d = detector()
    feed(d, [0.9] * 3)
    busy = feed(d, [0.9] * 5, decoder=DecoderState(busy=True, partial_due=True))
    assert busy == []
    due = feed(d, [0.9], decoder=DecoderState(busy=False, partial_due=True))
    assert isinstance(due[0][1], DecodePartial)
    # a partial while the caller takes a turn is shown and may prefetch context
    assert d.on_partial(due[0][1].utterance, "what time") == [PartialText("what time", True)]


def test_pause_decodes_only_for_a_turn_not_for_undecided_speech_over_the_agent():
    d = detector(interruption_min_secs=2.0)
    got = feed(d, [0.9] * 10 + [0.0], agent=Agent.AUDIBLE)
    assert not any(isinstance(x, DecodeAtPause) for _, x in got)
    d2 = detector()
    got2 = feed(d2, [0.9] * 10 + [0.0])
    assert isinstance(got2[-1][1], DecodeAtPause)


def test_the_agent_finishing_makes_speech_over_its_end_a_turn():
    d = detector(interruption_min_secs=2.0)
    feed(d, [0.9] * 10, agent=Agent.AUDIBLE)
    d.agent_finished()
    got = feed(d, [0.0] * 9)
    assert [type(x) for _, x in got] == [DecodeAtPause, SpeechStopped, DecodeFinal]


def test_no_pause_when_the_agent_is_not_replying_any_more():
    d = detector(interruption_min_secs=0.4)
    got = feed(d, [0.9] * 3, agent=Agent.AUDIBLE) + feed(d, [0.9] * 13, agent=Agent.SILENT)
    assert not any(isinstance(x, PauseAgent) for _, x in got)
