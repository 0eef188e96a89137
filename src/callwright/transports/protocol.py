"""The WebSocket voice protocol's control messages (docs/protocol.md).

Client -> server JSON messages are validated here; server -> client events come
from `callwright.pipeline.events` plus the `started` and `clear` messages below.
Binary WebSocket messages carry audio in the format agreed by `start`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

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
    def __init__(self, code: str, message: str) -> None:
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
            "message_too_large", f"control messages are limited to {MAX_CONTROL_BYTES} bytes"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            "bad_json", f"not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(data, dict) or "type" not in data:
        raise ProtocolError("bad_message", "a control message is a JSON object with a 'type'")
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ProtocolError("bad_message", problems) from None


def client_schema() -> dict[str, Any]:
    """JSON schema of every client control message (published as docs/protocol.schema.json)."""
    schema = _client_adapter.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"Callwright voice protocol v{PROTOCOL_VERSION}: client control messages"
    return schema


if __name__ == "__main__":  # python -m callwright.transports.protocol > docs/protocol.schema.json
    print(json.dumps(client_schema(), indent=2))
