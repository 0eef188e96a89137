"""Everything the server sends over the WebSocket matches the published schema: the
transport's own messages and every event a session can emit, serialised as sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from callwright.pipeline.context import GroundingResult, KnowledgeHit, KnowledgeUse, KnowledgeVia
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
    ToolCallEvent,
    ToolResultEvent,
    ToolTiming,
    TranscriptEvent,
    TurnMetrics,
    TurnMetricsEvent,
    UserSpeechStarted,
    UserSpeechStopped,
)
from callwright.sessions.model import AudioFormat
from callwright.transports.protocol import (
    AudioFormatMsg,
    PongMessage,
    ServerMsg,
    StartedMessage,
    server_adapter,
)
from callwright.transports.websocket import WebSocketOutput, event_json

DOC_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"
SERVER_SCHEMA = {
    "$ref": "#/$defs/ServerMessage",
    "$defs": json.loads(DOC_SCHEMA.read_text())["$defs"],
}

USED = KnowledgeUse(
    query="how much is parking",
    hits=(
        KnowledgeHit(
            n=1, chunk_id=7, kb="clinic", source="faq.md", headings=("FAQ", "Parking"), score=0.5
        ),
    ),
    passages=("Parking costs 3 dollars.",),
    kbs=("clinic",),
    timings_ms={"vector_ms": 1.5, "total_ms": 2.25},
    via=KnowledgeVia.TOOL,
)
METRICS = TurnMetrics(
    turn=2,
    speech_end=1.0,
    vad_stop=1.2,
    first_audio_out=1.9,
    late_frames=1,
    tools=[ToolTiming("order_status", "ok", 120.0), ToolTiming("refund", "not_allowed", 0.2)],
)


def _every_event() -> list[SessionEvent]:
    return [
        UserSpeechStarted(),
        UserSpeechStopped(),
        TranscriptEvent(turn=1, text="how much is parking", final=True),
        AgentTextEvent(turn=1, text="Three dollars [1]."),
        ToolCallEvent(turn=1, name="search_knowledge", arguments='{"query": "parking"}'),
        ToolResultEvent(turn=1, name="search_knowledge", status="ok", duration_ms=31.5),
        AgentSpeechStarted(turn=1),
        AgentSpeechEnded(turn=1, text="Three dollars."),
        InterruptionEvent(turn=1, heard_text="Three"),
        TurnMetricsEvent(metrics=METRICS),
        TurnMetricsEvent(metrics=TurnMetrics(turn=3)),  # nothing measured: all null
        KnowledgeEvent(turn=1, used=USED),
        KnowledgeEvent(
            turn=1,
            used=USED,
            grounding=GroundingResult(
                flagged=True, unsupported=("7",), checked=2, cited=(1,), cited_chunks=(7,)
            ),
        ),
        *(ErrorEvent(code=code, message="boom") for code in ErrorCode),
        *(SessionEndedEvent(reason=reason) for reason in EndReason),
    ]


def _subclasses(cls: type[SessionEvent]) -> set[type[SessionEvent]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_the_examples_cover_every_event_type() -> None:
    assert {type(e) for e in _every_event()} == _subclasses(SessionEvent)


@pytest.mark.parametrize("event", _every_event(), ids=lambda e: e.type)
def test_every_session_event_matches_the_schema(event: SessionEvent) -> None:
    sent = json.loads(event_json(event))
    assert sent["type"] == event.type
    jsonschema.validate(sent, SERVER_SCHEMA)
    model = server_adapter.validate_python(sent)
    assert model.model_dump(mode="json") == sent  # the model holds every field sent


def test_the_schema_refuses_drift() -> None:
    """A field renamed or added in an event, and not in its model, fails the check."""
    knowledge = json.loads(event_json(KnowledgeEvent(turn=1, used=USED)))
    knowledge["used"]["hits"][0]["document"] = "faq.md"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(knowledge, SERVER_SCHEMA)
    metrics = json.loads(event_json(TurnMetricsEvent(metrics=METRICS)))
    del metrics["retrieval_ms"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(metrics, SERVER_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "end", "reason": "bored"}, SERVER_SCHEMA)
    with pytest.raises(ValidationError):
        server_adapter.validate_python({"type": "error", "code": "oops", "message": "x"})


class _FakeSocket:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def send_text(self, data: str) -> None:
        self.texts.append(data)


async def test_the_transports_own_messages_match_the_schema() -> None:
    ws = _FakeSocket()
    out = WebSocketOutput(ws, AudioFormat())  # type: ignore[arg-type]
    fmt = AudioFormatMsg(encoding="pcm16", sample_rate=48000)
    own: list[ServerMsg] = [
        StartedMessage(
            protocol=1,
            call_id="c1",
            agent_id="a",
            agent_name="Anna",
            agent_version=2,
            audio=fmt,
            output_audio=fmt,
        ),
        PongMessage(id="p1"),
        PongMessage(),
    ]
    for message in own:
        await out.send_message(message)
    await out.clear_audio()
    await out.error(ErrorCode.NOT_STARTED, "send a 'start' message before audio")
    await out.send_event(SessionEndedEvent(reason=EndReason.CALLER_HANGUP))
    sent: list[dict[str, Any]] = [json.loads(t) for t in ws.texts]
    for wire in sent:
        jsonschema.validate(wire, SERVER_SCHEMA)
    assert [m["type"] for m in sent] == ["started", "pong", "pong", "clear", "error", "end"]
    assert sent[2] == {"type": "pong", "id": None}
    assert sent[4] == {
        "type": "error",
        "code": "not_started",
        "message": "send a 'start' message before audio",
    }
    assert sent[5] == {"type": "end", "reason": "caller_hangup"}
