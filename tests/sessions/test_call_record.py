"""The mapping from a call's session events to the turn and event rows storage keeps."""

from __future__ import annotations

from datetime import UTC, datetime

from callwright.pipeline.context import GroundingResult, KnowledgeHit, KnowledgeUse
from callwright.pipeline.events import (
    AgentSpeechEnded,
    AgentSpeechStarted,
    AgentTextEvent,
    EndReason,
    ErrorCode,
    ErrorEvent,
    InterruptionEvent,
    KnowledgeEvent,
    SessionEndedEvent,
    SessionEvent,
    TranscriptEvent,
    TurnMetrics,
    TurnMetricsEvent,
    UserSpeechStarted,
)
from callwright.sessions.call_record import CallRecord
from callwright.storage.records import TurnWrite

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

USED = KnowledgeUse(
    query="how much is parking",
    hits=(KnowledgeHit(n=1, chunk_id=7, kb="clinic", source="faq.md", headings=("Parking",)),),
    passages=("Parking costs 3 dollars.",),
    kbs=("clinic",),
)


def _feed(record: CallRecord, events: list[SessionEvent]) -> tuple[list[TurnWrite], list[str]]:
    turns: list[TurnWrite] = []
    kinds: list[str] = []
    for event in events:
        rows = record.observe(event, T0)
        turns += rows.turns
        kinds += [kind for kind, _, _ in rows.events]
    return turns, kinds


def test_a_turn_becomes_a_user_row_and_an_agent_row_with_metrics() -> None:
    metrics = TurnMetrics(turn=1, speech_end=1.0, first_audio_out=1.5)
    turns, kinds = _feed(
        CallRecord(),
        [
            UserSpeechStarted(),
            TranscriptEvent(turn=1, text="how much", final=False),
            TranscriptEvent(turn=1, text="how much is parking", final=True),
            AgentTextEvent(turn=1, text="Three dollars."),
            AgentSpeechStarted(turn=1),
            AgentSpeechEnded(turn=1, text="Three dollars."),
            TurnMetricsEvent(metrics=metrics),
        ],
    )
    assert [(t.role, t.index, t.text) for t in turns] == [
        ("user", 1, "how much is parking"),
        ("assistant", 1, "Three dollars."),
    ]
    agent = turns[1]
    assert not agent.interrupted and not agent.flagged and agent.knowledge is None
    assert agent.metrics is not None and agent.metrics["voice_to_voice_ms"] == 500.0
    # speech starts are not kept; partial and final transcripts are
    assert kinds == [
        "transcript",
        "transcript",
        "agent_text",
        "agent_speech_ended",
        "turn_metrics",
    ]


def test_the_agent_row_waits_for_its_metrics() -> None:
    record = CallRecord()
    assert record.observe(AgentSpeechEnded(turn=2, text="Hello."), T0).turns == []
    # metrics of another turn do not complete it
    assert record.observe(TurnMetricsEvent(metrics=TurnMetrics(turn=3)), T0).turns == []
    [row] = record.observe(TurnMetricsEvent(metrics=TurnMetrics(turn=2)), T0).turns
    assert row.text == "Hello." and row.index == 2


def test_greeting_is_written_at_once() -> None:
    [row] = CallRecord().observe(AgentSpeechEnded(turn=0, text="Hi there."), T0).turns
    assert (row.role, row.index, row.text) == ("assistant", 0, "Hi there.")


def test_interruption_keeps_what_the_caller_heard() -> None:
    turns, kinds = _feed(
        CallRecord(),
        [
            InterruptionEvent(turn=1, heard_text="Three"),
            TurnMetricsEvent(metrics=TurnMetrics(turn=1, interrupted=True)),
        ],
    )
    [row] = turns
    assert row.text == "Three" and row.interrupted
    assert kinds == ["interruption", "turn_metrics"]


def test_knowledge_and_a_flagged_grounding_go_with_the_agent_turn() -> None:
    grounding = GroundingResult(
        flagged=True, unsupported=("7",), checked=2, cited=(1,), cited_chunks=(7,)
    )
    turns, kinds = _feed(
        CallRecord(),
        [
            AgentSpeechEnded(turn=1, text="It is 7 dollars [1]."),
            KnowledgeEvent(turn=1, used=USED, grounding=grounding),
            TurnMetricsEvent(metrics=TurnMetrics(turn=1)),
        ],
    )
    [row] = turns
    assert row.flagged
    # the stored JSON: the wire event's `used` and `grounding`, as before the types
    assert row.knowledge == {
        "used": {
            "kbs": ["clinic"],
            "query": "how much is parking",
            "via": "prefix",
            "relevant": True,
            "cached": False,
            "from_partial": False,
            "dropped": 0,
            "passages": ["Parking costs 3 dollars."],
            "hits": [
                {
                    "n": 1,
                    "chunk_id": 7,
                    "kb": "clinic",
                    "source": "faq.md",
                    "headings": ["Parking"],
                    "score": 0.0,
                    "vector_score": None,
                }
            ],
            "timings_ms": {},
        },
        "grounding": {
            "flagged": True,
            "unsupported": ["7"],
            "checked": 2,
            "cited": [1],
            "cited_chunks": [7],
        },
    }
    assert kinds == ["agent_speech_ended", "knowledge", "turn_metrics"]


def test_unflagged_or_unchecked_knowledge_does_not_flag() -> None:
    for grounding in (None, GroundingResult(flagged=False, checked=3)):
        turns, _ = _feed(
            CallRecord(),
            [
                AgentSpeechEnded(turn=1, text="Three dollars."),
                KnowledgeEvent(turn=1, used=USED, grounding=grounding),
                TurnMetricsEvent(metrics=TurnMetrics(turn=1)),
            ],
        )
        [row] = turns
        assert not row.flagged and row.knowledge is not None
        assert row.knowledge["grounding"] == (None if grounding is None else grounding.to_dict())


def test_knowledge_of_another_turn_is_not_attached() -> None:
    turns, _ = _feed(
        CallRecord(),
        [
            AgentSpeechEnded(turn=2, text="Hello."),
            KnowledgeEvent(turn=1, used=USED, grounding=GroundingResult(flagged=True)),
            TurnMetricsEvent(metrics=TurnMetrics(turn=2)),
        ],
    )
    [row] = turns
    assert row.knowledge is None and not row.flagged


def test_transcripts_off_keeps_no_words() -> None:
    turns, kinds = _feed(
        CallRecord(store_transcripts=False),
        [
            TranscriptEvent(turn=1, text="my card number is 4242", final=True),
            AgentTextEvent(turn=1, text="Thanks."),
            AgentSpeechEnded(turn=1, text="Thanks."),
            KnowledgeEvent(turn=1, used=USED),
            TurnMetricsEvent(metrics=TurnMetrics(turn=1)),
            ErrorEvent(code=ErrorCode.REPLY_FAILED, message="tts down"),
            SessionEndedEvent(reason=EndReason.CALLER_HANGUP),
        ],
    )
    assert turns == []
    assert kinds == ["turn_metrics", "error", "end"]


def test_event_rows_hold_the_wire_json() -> None:
    rows = CallRecord().observe(SessionEndedEvent(reason=EndReason.IDLE_TIMEOUT), T0)
    assert rows.events == [("end", {"type": "end", "reason": "idle_timeout"}, T0)]
