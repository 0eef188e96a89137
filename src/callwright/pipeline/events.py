"""The pipeline's vocabulary: every event a voice session produces.

Transports serialise these to their wire formats, observers persist them. They are
plain dataclasses: cheap to create on the audio path, no validation needed inside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from callwright.pipeline.context import GroundingResult, KnowledgeUse


class ReplyKind(StrEnum):
    """Why the agent speaks: an answer, or one of its fixed lines."""

    REPLY = "reply"
    GREETING = "greeting"
    REPROMPT = "reprompt"  # the caller has been silent a while
    GOODBYE = "goodbye"  # the agent is about to hang up


class EndReason(StrEnum):
    """Why a call ended: the `end` event's `reason` and the stored call's `end_reason`."""

    CALLER_HANGUP = "caller_hangup"
    AGENT_HANGUP = "agent_hangup"
    IDLE_TIMEOUT = "idle_timeout"
    MAX_DURATION = "max_duration"
    ERROR = "error"
    ENDED = "ended"  # the session stopped without a recorded reason


class ErrorCode(StrEnum):
    """The `code` of every `error` the voice protocol sends (docs/protocol.md, Errors)."""

    # the session's own failures; the call goes on unless it ends
    INTERNAL_ERROR = "internal_error"
    ASR_FAILED = "asr_failed"
    CONTEXT_FAILED = "context_failed"
    REPLY_FAILED = "reply_failed"
    # the transport's: bad input from the peer, or a call that could not start
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    MESSAGE_TOO_LARGE = "message_too_large"
    NOT_STARTED = "not_started"
    ALREADY_STARTED = "already_started"
    UNKNOWN_AGENT = "unknown_agent"
    BAD_AUDIO = "bad_audio"
    AUDIO_TOO_LARGE = "audio_too_large"
    ENGINE_UNAVAILABLE = "engine_unavailable"


@dataclass(frozen=True, slots=True)
class ToolTiming:
    """One tool call of a turn: which, the tool layer's verdict, and how long it took."""

    name: str
    status: str  # e.g. ok, not_allowed, bad_arguments, timed_out, failed
    ms: float


@dataclass(slots=True)
class TurnMetrics:
    """Where one turn's time went. Absolute times are the event loop's clock (seconds);
    `breakdown()` gives milliseconds from the end of the caller's speech."""

    turn: int
    speech_end: float | None = None  # arrival of the caller's last voiced audio
    vad_stop: float | None = None  # VAD confirmed the silence
    asr_final: float | None = None
    end_of_turn: float | None = None  # endpointing decided the caller is done
    retrieval_start: float | None = None  # knowledge lookup for this turn began
    retrieval_done: float | None = None
    llm_first_token: float | None = None
    tts_first_audio: float | None = None
    first_audio_out: float | None = None
    playback_end: float | None = None
    interrupted: bool = False
    late_frames: int = 0  # reply frames the pacer sent after they should have played
    speculative: bool = False  # the reply was started before the end of turn was confirmed
    tools: list[ToolTiming] = field(default_factory=list)  # the turn's tool calls, in order

    def breakdown(self) -> dict[str, float | None]:
        base = self.speech_end
        out: dict[str, float | None] = {}
        for name in (
            "vad_stop",
            "asr_final",
            "end_of_turn",
            "retrieval_done",
            "llm_first_token",
            "tts_first_audio",
            "first_audio_out",
        ):
            value = getattr(self, name)
            out[f"{name}_ms"] = (
                None if base is None or value is None else round((value - base) * 1000, 1)
            )
        out["voice_to_voice_ms"] = out["first_audio_out_ms"]
        out["retrieval_ms"] = (
            None
            if self.retrieval_start is None or self.retrieval_done is None
            else round((self.retrieval_done - self.retrieval_start) * 1000, 1)
        )
        return out


@dataclass(slots=True)
class SessionEvent:
    """Base class; `type` names the event on every wire."""

    type: str = field(init=False, default="event")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class UserSpeechStarted(SessionEvent):
    type: str = field(init=False, default="user_speech_started")


@dataclass(slots=True)
class UserSpeechStopped(SessionEvent):
    type: str = field(init=False, default="user_speech_stopped")


@dataclass(slots=True)
class TranscriptEvent(SessionEvent):
    turn: int
    text: str
    final: bool
    type: str = field(init=False, default="transcript")


@dataclass(slots=True)
class AgentTextEvent(SessionEvent):
    """Text the agent is about to speak, one clause or sentence at a time."""

    turn: int
    text: str
    type: str = field(init=False, default="agent_text")


@dataclass(slots=True)
class ToolCallEvent(SessionEvent):
    turn: int
    name: str
    arguments: str
    type: str = field(init=False, default="tool_call")


@dataclass(slots=True)
class ToolResultEvent(SessionEvent):
    """A tool call finished (or was refused): what the caller is waiting on, live."""

    turn: int
    name: str
    status: str
    duration_ms: float
    type: str = field(init=False, default="tool_result")


@dataclass(slots=True)
class AgentSpeechStarted(SessionEvent):
    turn: int
    type: str = field(init=False, default="agent_speech_started")


@dataclass(slots=True)
class AgentSpeechEnded(SessionEvent):
    turn: int
    text: str  # what the caller heard in full
    type: str = field(init=False, default="agent_speech_ended")


@dataclass(slots=True)
class InterruptionEvent(SessionEvent):
    turn: int
    heard_text: str  # the part of the reply the caller actually heard
    type: str = field(init=False, default="interruption")


@dataclass(slots=True)
class TurnMetricsEvent(SessionEvent):
    metrics: TurnMetrics
    type: str = field(init=False, default="turn_metrics")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "turn": self.metrics.turn,
            "interrupted": self.metrics.interrupted,
            "speculative": self.metrics.speculative,
            "late_frames": self.metrics.late_frames,
            **self.metrics.breakdown(),
            "tools": [asdict(t) for t in self.metrics.tools],
        }


@dataclass(slots=True)
class KnowledgeEvent(SessionEvent):
    """The knowledge an agent turn used, and the grounding check of its answer."""

    turn: int
    used: KnowledgeUse
    grounding: GroundingResult | None = None
    type: str = field(init=False, default="knowledge")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "turn": self.turn,
            "used": self.used.to_dict(),
            "grounding": None if self.grounding is None else self.grounding.to_dict(),
        }


@dataclass(slots=True)
class ErrorEvent(SessionEvent):
    code: ErrorCode
    message: str
    type: str = field(init=False, default="error")


@dataclass(slots=True)
class SessionEndedEvent(SessionEvent):
    reason: EndReason
    type: str = field(init=False, default="end")
