"""From a session's events to the rows storage keeps of a call.

A `CallRecord` watches one call's events and says, for each, which turn and event
rows to write: the caller's final transcripts, the agent's turns (what the caller
heard, interrupted or not, with the turn's metrics and the knowledge it used), and
the events worth keeping. It does no I/O: `Call` hands the rows to the `CallWriter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from callwright.pipeline.events import (
    AgentSpeechEnded,
    AgentTextEvent,
    ErrorEvent,
    InterruptionEvent,
    KnowledgeEvent,
    SessionEndedEvent,
    SessionEvent,
    ToolCallEvent,
    TranscriptEvent,
    TurnMetricsEvent,
)
from callwright.storage.records import EventInput, TurnWrite

# Events stored as event rows; VAD and speech-start events are not worth a row each.
PERSISTED: tuple[type[SessionEvent], ...] = (
    TranscriptEvent,
    AgentTextEvent,
    InterruptionEvent,
    TurnMetricsEvent,
    ToolCallEvent,
    ErrorEvent,
    AgentSpeechEnded,
    KnowledgeEvent,
    SessionEndedEvent,
)
# Events that carry what was said (the caller's words, the agent's, a query built from
# them): with transcripts off they are not stored either, only metrics, errors and the end.
CARRY_WORDS: tuple[type[SessionEvent], ...] = (
    TranscriptEvent,
    AgentTextEvent,
    InterruptionEvent,
    ToolCallEvent,
    AgentSpeechEnded,
    KnowledgeEvent,
)


@dataclass(slots=True)
class CallRows:
    """What one event adds to the call's record."""

    turns: list[TurnWrite] = field(default_factory=list)
    events: list[EventInput] = field(default_factory=list)


class CallRecord:
    """One call's event-to-row mapping. An agent turn is written once it is complete:
    at its `turn_metrics` (which follow its `knowledge`), or at once for the greeting
    and the agent's fixed lines (turn 0, no metrics)."""

    def __init__(self, *, store_transcripts: bool = True) -> None:
        self.store_transcripts = store_transcripts
        self._last_agent: TurnWrite | None = None  # the agent turn waiting for its metrics

    def observe(self, event: SessionEvent, now: datetime) -> CallRows:
        rows = CallRows()
        if isinstance(event, PERSISTED) and (
            self.store_transcripts or not isinstance(event, CARRY_WORDS)
        ):
            rows.events.append((event.type, event.to_dict(), now))
        if isinstance(event, TranscriptEvent):
            if event.final:
                rows.turns.append(
                    TurnWrite(index=event.turn, role="user", text=event.text, started_at=now)
                )
        elif isinstance(event, AgentSpeechEnded | InterruptionEvent):
            interrupted = isinstance(event, InterruptionEvent)
            self._last_agent = TurnWrite(
                index=event.turn,
                role="assistant",
                text=event.heard_text if isinstance(event, InterruptionEvent) else event.text,
                interrupted=interrupted,
                started_at=now,
            )
            if event.turn == 0:  # greeting / prompts: no metrics event follows
                rows.turns.append(self._last_agent)
        elif isinstance(event, KnowledgeEvent):
            agent_turn = self._last_agent
            if agent_turn is not None and agent_turn.index == event.turn:
                wire = event.to_dict()
                agent_turn.knowledge = {"used": wire["used"], "grounding": wire["grounding"]}
                agent_turn.flagged = event.grounding is not None and event.grounding.flagged
        elif isinstance(event, TurnMetricsEvent):
            agent_turn = self._last_agent
            if agent_turn is not None and agent_turn.index == event.metrics.turn:
                agent_turn.metrics = event.to_dict()
                rows.turns.append(agent_turn)
                self._last_agent = None
        if not self.store_transcripts:
            rows.turns = []
        return rows
