"""The small stages: VAD segmenter, endpointing, chunker, pacer, conversation."""

from __future__ import annotations

from callwright.pipeline.chunker import SpeechChunker
from callwright.pipeline.conversation import Conversation
from callwright.pipeline.endpointing import TranscriptEndpointing
from callwright.pipeline.vad import VadEvent, VadParams, VadSegmenter


def run_vad(probs: list[float], **params: float) -> list[tuple[int, VadEvent]]:
    seg = VadSegmenter(VadParams(**params), window_secs=0.032)
    return [(i, ev) for i, p in enumerate(probs) if (ev := seg.process(i, p)) is not None]


def test_vad_needs_start_secs_of_speech_and_stop_secs_of_silence():
    probs = [0.9] * 2 + [0.0] * 3 + [0.9] * 5 + [0.0] * 12
    events = run_vad(probs, start_secs=0.096, stop_secs=0.32)
    # two windows are too short to start; five are enough (3 windows = 96 ms)
    assert events[0] == (7, VadEvent.START)
    assert events[1] == (10, VadEvent.PAUSE)
    assert events[2] == (19, VadEvent.STOP)  # 10 silent windows = 320 ms


def test_vad_hysteresis_and_resume():
    probs = [0.9] * 4 + [0.4] * 3 + [0.1] * 2 + [0.9] * 2 + [0.0] * 20
    events = [e for _, e in run_vad(probs, threshold=0.5, start_secs=0.064, stop_secs=0.3)]
    # 0.4 is above the release level (0.35): still speech; a dip then speech resumes
    assert events == [
        VadEvent.START,
        VadEvent.PAUSE,
        VadEvent.RESUME,
        VadEvent.PAUSE,
        VadEvent.STOP,
    ]


def test_endpointing_waits_longer_for_unfinished_sentences():
    ep = TranscriptEndpointing(complete_delay_secs=0.0, incomplete_delay_secs=0.7)
    assert ep.extra_wait_secs("What time do you open?") == 0.0
    assert ep.extra_wait_secs("Yes, please book it.") == 0.0
    assert ep.extra_wait_secs("I would like to book an appointment for") == 0.7
    assert ep.extra_wait_secs("My number is 555 12") == 0.7
    assert ep.extra_wait_secs("Let me think...") == 0.7
    assert ep.extra_wait_secs("") == 0.0


def test_chunker_first_phrase_is_cut_before_a_phrase_opening_word():
    c = SpeechChunker()
    out: list[str] = []
    for token in ["The", " clinic", " is", " loc", "ated", " nex", "t", " to", " the", " library."]:
        out += c.push(token)
    out += c.flush()
    assert out == ["The clinic is located", "next to the library."]
    c = SpeechChunker()
    assert c.push("Sure, ") == ["Sure,"]  # a one-word interjection goes first
    assert c.push("we open at nine on Saturday, ") == []  # later pieces are sentences
    assert c.push("and close at one. ") == ["we open at nine on Saturday, and close at one."]


def test_chunker_releases_first_clause_early_then_sentences():
    c = SpeechChunker(first_clause_min_words=3)
    out: list[str] = []
    text = "Sure, we are open today, until six. Dr. Patel sees children on Mondays. Bye"
    for token in text.split():
        out += c.push(token + " ")
    out += c.flush()
    assert out == [
        "Sure, we are open today,",
        "until six.",
        "Dr. Patel sees children on Mondays.",
        "Bye",
    ]


def test_chunker_keeps_decimals_and_splits_very_long_text():
    c = SpeechChunker(max_chars=40)
    pieces = c.push("It costs 3.5 dollars and " + "very " * 20) + c.flush()
    assert pieces[0].startswith("It costs 3.5 dollars")
    assert all(len(p) <= 40 for p in pieces)
    assert " ".join(pieces).split() == ("It costs 3.5 dollars and " + "very " * 20).split()


def test_conversation_merges_consecutive_user_turns_and_keeps_system_first():
    conv = Conversation("system prompt", max_messages=3)
    conv.add_user("hello")
    conv.add_user("are you there")
    conv.add_assistant("yes")
    conv.add_user("good")
    conv.add_assistant("great")
    msgs = conv.for_llm()
    assert msgs[0].role == "system" and msgs[0].content == "system prompt"
    assert [m.content for m in msgs[1:]] == ["yes", "good", "great"]
    assert conv.messages[0].content == "hello are you there"


def test_conversation_history_is_bounded_by_characters():
    conv = Conversation("sys", max_chars=25)
    for i in range(10):
        conv.add_user(f"question number {i}")
        conv.add_assistant(f"answer {i}")
    msgs = conv.for_llm()
    assert [m.content for m in msgs[1:]] == ["question number 9", "answer 9"]
    conv.add_user("x" * 100)  # one long message is still sent whole
    assert [m.content for m in conv.for_llm()[1:]] == ["x" * 100]


def test_heard_text_follows_the_tts_word_timings():
    from callwright.pipeline.pacer import Segment

    seg = Segment(text="Extraordinarily long opening, then short words", turn=1)
    seg.queued_frames = 100
    seg.word_end_frames = [60.0, 70.0, 80.0, 90.0, 100.0]  # the first word takes 60%
    seg.played_frames = 55
    assert seg.heard_text() == ""  # even spreading would say two words
    seg.played_frames = 75
    assert seg.heard_text() == "Extraordinarily long"
    # spoken in more words than written ("9am" as "nine a m"): the same share of them
    seg = Segment(text="Come at 9am please", turn=1)
    seg.queued_frames = 60
    seg.word_end_frames = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    seg.played_frames = 30
    assert seg.heard_text() == "Come at"
    seg.played_frames = 60
    assert seg.heard_text() == "Come at 9am please"
