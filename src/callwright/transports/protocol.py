"""The WebSocket voice protocol's JSON messages, both ways (docs/protocol.md).

Client -> server messages are validated here. Server -> client messages are modelled
here too: the transport builds its own (`started`, `clear`, `pong`, `error`) through
these models, and the session events it forwards (`callwright.pipeline.events`,
serialised by their `to_dict`) have one model each, so the published schema
(`protocol_schema()`) describes everything that crosses the socket and the tests
hold the events to it. Binary WebSocket messages carry audio in the format agreed
by `start`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from callwright.pipeline.context import KnowledgeVia
from callwright.pipeline.events import EndReason, ErrorCode

PROTOCOL_VERSION = 1
MAX_CONTROL_BYTES = 16_384
MAX_AUDIO_FRAME_SECS = 1.0  # larger binary messages are refused: stream, don't upload


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioFormatMsg(_Msg):
    encoding: Literal["pcm16", "mulaw"] = "pcm16"
    sample_rate: Literal[8000, 16000, 22050, 24000, 32000, 44100, 48000] = 16000


class StartMessage(_Msg):
    type: Literal["start"]
    agent_id: str | None = Field(
        None, description="agent to call; the server's default when absent"
    )
    audio: AudioFormatMsg = Field(default_factory=AudioFormatMsg, description="caller audio format")
    output_audio: AudioFormatMsg | None = Field(
        None, description="agent audio format; same as `audio` when absent"
    )
    user_id: str | None = Field(None, max_length=128)
    consent: Literal["granted", "denied", "unknown"] = "unknown"
    language: str | None = Field(None, max_length=16)
    channel: Literal["web", "sim"] = "web"
    metadata: dict[str, str] = Field(default_factory=dict)


class StopMessage(_Msg):
    type: Literal["stop"]


class PingMessage(_Msg):
    type: Literal["ping"]
    id: str | int | None = None


ClientMessage = Annotated[StartMessage | StopMessage | PingMessage, Field(discriminator="type")]
_client_adapter: TypeAdapter[StartMessage | StopMessage | PingMessage] = TypeAdapter(ClientMessage)


class ProtocolError(ValueError):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _describe(error: Any) -> str:
    loc = error["loc"]
    # the first element of `loc` is the union member's tag; a bad tag has no location
    where = ".".join(str(p) for p in loc[1:]) if len(loc) > 1 else "type"
    return f"{where}: {error['msg']}"


def parse_client_message(text: str) -> StartMessage | StopMessage | PingMessage:
    if len(text) > MAX_CONTROL_BYTES:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"control messages are limited to {MAX_CONTROL_BYTES} bytes",
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            ErrorCode.BAD_JSON, f"not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(data, dict) or "type" not in data:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, "a control message is a JSON object with a 'type'"
        )
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ProtocolError(ErrorCode.BAD_MESSAGE, problems) from None


# ----------------------------------------------------------------- server -> client
def _all_required(schema: dict[str, Any]) -> None:
    """The server sends every field of its messages (null where there is no value),
    including `type`, which has a default only so the transport need not repeat it."""
    schema["required"] = list(schema.get("properties", {}))


class ServerMsg(BaseModel):
    """Base of every server -> client message."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_all_required)

    def to_json(self) -> str:
        return self.model_dump_json()


class StartedMessage(ServerMsg):
    type: Literal["started"] = "started"
    protocol: int
    call_id: str
    agent_id: str
    agent_name: str
    agent_version: int
    audio: AudioFormatMsg = Field(description="caller audio format, as agreed")
    output_audio: AudioFormatMsg = Field(description="agent audio format, as agreed")


class ClearMessage(ServerMsg):
    """Drop any agent audio not yet played (barge-in)."""

    type: Literal["clear"] = "clear"


class PongMessage(ServerMsg):
    type: Literal["pong"] = "pong"
    id: str | int | None = None


class ErrorMessage(ServerMsg):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


class UserSpeechStartedMessage(ServerMsg):
    type: Literal["user_speech_started"] = "user_speech_started"


class UserSpeechStoppedMessage(ServerMsg):
    type: Literal["user_speech_stopped"] = "user_speech_stopped"


class TranscriptMessage(ServerMsg):
    type: Literal["transcript"] = "transcript"
    turn: int
    text: str
    final: bool


class AgentTextMessage(ServerMsg):
    type: Literal["agent_text"] = "agent_text"
    turn: int
    text: str


class ToolCallMessage(ServerMsg):
    type: Literal["tool_call"] = "tool_call"
    turn: int
    name: str
    arguments: str


class ToolResultMessage(ServerMsg):
    type: Literal["tool_result"] = "tool_result"
    turn: int
    name: str
    status: str = Field(description="ok, not_allowed, bad_arguments, timed_out, failed, ...")
    duration_ms: float


class AgentSpeechStartedMessage(ServerMsg):
    type: Literal["agent_speech_started"] = "agent_speech_started"
    turn: int


class AgentSpeechEndedMessage(ServerMsg):
    type: Literal["agent_speech_ended"] = "agent_speech_ended"
    turn: int
    text: str


class InterruptionMessage(ServerMsg):
    type: Literal["interruption"] = "interruption"
    turn: int
    heard_text: str


class TurnMetricsMessage(ServerMsg):
    """Milliseconds from the end of the caller's speech; null where a stage did not run."""

    type: Literal["turn_metrics"] = "turn_metrics"
    turn: int
    interrupted: bool
    speculative: bool
    late_frames: int
    vad_stop_ms: float | None
    asr_final_ms: float | None
    end_of_turn_ms: float | None
    retrieval_done_ms: float | None
    llm_first_token_ms: float | None
    tts_first_audio_ms: float | None
    first_audio_out_ms: float | None
    voice_to_voice_ms: float | None
    retrieval_ms: float | None
    tools: list[ToolTimingMsg]


class _Record(_Msg):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_all_required)


class ToolTimingMsg(_Record):
    name: str
    status: str
    ms: float


class KnowledgeHitMsg(_Record):
    n: int
    chunk_id: int
    kb: str
    source: str
    headings: list[str]
    score: float
    vector_score: float | None


class KnowledgeUseMsg(_Record):
    kbs: list[str]
    query: str
    via: KnowledgeVia
    relevant: bool
    cached: bool
    from_partial: bool
    dropped: int
    passages: list[str]
    hits: list[KnowledgeHitMsg]
    timings_ms: dict[str, float]


class GroundingMsg(_Record):
    flagged: bool
    unsupported: list[str]
    checked: int
    cited: list[int]
    cited_chunks: list[int]


class KnowledgeMessage(ServerMsg):
    type: Literal["knowledge"] = "knowledge"
    turn: int
    used: KnowledgeUseMsg
    grounding: GroundingMsg | None


class EndMessage(ServerMsg):
    type: Literal["end"] = "end"
    reason: EndReason


_ServerUnion = (
    StartedMessage
    | ClearMessage
    | PongMessage
    | ErrorMessage
    | UserSpeechStartedMessage
    | UserSpeechStoppedMessage
    | TranscriptMessage
    | AgentTextMessage
    | ToolCallMessage
    | ToolResultMessage
    | AgentSpeechStartedMessage
    | AgentSpeechEndedMessage
    | InterruptionMessage
    | TurnMetricsMessage
    | KnowledgeMessage
    | EndMessage
)
ServerMessage = Annotated[_ServerUnion, Field(discriminator="type")]
server_adapter: TypeAdapter[_ServerUnion] = TypeAdapter(ServerMessage)

SCHEMA_FILES = (
    Path(__file__).resolve().parents[3] / "docs" / "protocol.schema.json",  # in a checkout
    Path(__file__).resolve().parents[1] / "schemas" / "protocol.schema.json",  # in the wheel
)


def _standalone(schema: dict[str, Any], title: str) -> dict[str, Any]:
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    return schema


def client_schema() -> dict[str, Any]:
    """JSON schema of every client control message."""
    return _standalone(
        _client_adapter.json_schema(),
        f"Callwright voice protocol v{PROTOCOL_VERSION}: client control messages",
    )


def server_schema() -> dict[str, Any]:
    """JSON schema of every JSON message the server sends."""
    return _standalone(
        server_adapter.json_schema(),
        f"Callwright voice protocol v{PROTOCOL_VERSION}: server messages",
    )


def protocol_schema() -> dict[str, Any]:
    """Both directions in one document (published as docs/protocol.schema.json):
    `$defs.ClientMessage` and `$defs.ServerMessage`; the document itself accepts either."""
    defs: dict[str, Any] = {}
    for name, adapter in (("ClientMessage", _client_adapter), ("ServerMessage", server_adapter)):
        schema = adapter.json_schema()
        for key, value in schema.pop("$defs", {}).items():
            if defs.setdefault(key, value) != value:
                raise RuntimeError(f"two protocol models are both named {key!r}")
        defs[name] = schema
    return _standalone(
        {
            "$defs": dict(sorted(defs.items())),
            "anyOf": [{"$ref": "#/$defs/ClientMessage"}, {"$ref": "#/$defs/ServerMessage"}],
        },
        f"Callwright voice protocol v{PROTOCOL_VERSION}: JSON messages, both directions",
    )


def write_schema_files() -> None:
    """Regenerate the published schema (docs and the package's copy)."""
    text = json.dumps(protocol_schema(), indent=2) + "\n"
    for path in SCHEMA_FILES:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


if __name__ == "__main__":  # python -m callwright.transports.protocol
    write_schema_files()
