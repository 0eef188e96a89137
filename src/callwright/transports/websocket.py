"""The browser/simulator WebSocket transport (protocol: docs/protocol.md).

One WebSocket is one call: a JSON `start` message, then binary audio both ways and
JSON events from the server. Bad input never kills the call: it gets an `error`
event and is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from callwright.audio.mulaw import ulaw_decode, ulaw_encode
from callwright.audio.pcm import PIPELINE_RATE
from callwright.audio.resample import StreamResampler
from callwright.pipeline.events import EndReason, ErrorCode, SessionEvent
from callwright.sessions.model import AudioFormat, SessionInfo
from callwright.sessions.runtime import Call, CallRuntime
from callwright.transports.protocol import (
    MAX_AUDIO_FRAME_SECS,
    PROTOCOL_VERSION,
    ClearMessage,
    ErrorMessage,
    PingMessage,
    PongMessage,
    ProtocolError,
    ServerMsg,
    StartedMessage,
    StartMessage,
    StopMessage,
    parse_client_message,
)

log = logging.getLogger(__name__)


class AudioDecoder:
    """Peer audio (PCM16 or μ-law at any supported rate) to the pipeline's PCM16."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self.resampler = StreamResampler(fmt.sample_rate, PIPELINE_RATE)
        bytes_per_sample = 1 if fmt.encoding == "mulaw" else 2
        self.max_bytes = int(fmt.sample_rate * MAX_AUDIO_FRAME_SECS) * bytes_per_sample

    def decode(self, data: bytes) -> bytes:
        if len(data) > self.max_bytes:
            raise ProtocolError(
                ErrorCode.AUDIO_TOO_LARGE,
                f"audio messages are limited to {MAX_AUDIO_FRAME_SECS:g} s "
                f"({self.max_bytes} bytes); send 20 ms frames",
            )
        if self.fmt.encoding == "mulaw":
            pcm = ulaw_decode(data)
        else:
            if len(data) % 2:
                raise ProtocolError(
                    ErrorCode.BAD_AUDIO, "PCM16 audio must have an even number of bytes"
                )
            pcm = data
        return self.resampler.process(pcm)


class WebSocketOutput:
    """SessionOutput over a Starlette WebSocket; a closed peer makes sends no-ops."""

    def __init__(self, ws: WebSocket, fmt: AudioFormat) -> None:
        self.ws = ws
        self.mulaw = fmt.encoding == "mulaw"
        self.closed = False
        self._lock = asyncio.Lock()

    async def _send(self, data: bytes | str) -> None:
        if self.closed:
            return
        try:
            if isinstance(data, bytes):
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_text(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closed = True

    async def send_audio(self, pcm: bytes) -> None:
        await self._send(ulaw_encode(pcm) if self.mulaw else pcm)

    async def send_event(self, event: SessionEvent) -> None:
        # forwarded as the event serialises itself: no validation on the live path (the
        # tests hold every event to its model in `protocol`)
        await self._send(event_json(event))

    async def send_message(self, message: ServerMsg) -> None:
        await self._send(message.to_json())

    async def clear_audio(self) -> None:
        await self.send_message(ClearMessage())

    async def error(self, code: ErrorCode, message: str) -> None:
        await self.send_message(ErrorMessage(code=code, message=message))


def event_json(event: SessionEvent) -> str:
    """A session event as the WebSocket sends it."""
    return json.dumps(event.to_dict(), separators=(",", ":"))


async def serve_voice_websocket(ws: WebSocket, runtime: CallRuntime) -> None:
    await ws.accept()
    output = WebSocketOutput(ws, AudioFormat())
    try:
        start = await _await_start(ws, output, runtime)
    except WebSocketDisconnect:
        return
    if start is None:
        return
    message, agent_id = start
    in_msg = message.audio
    in_fmt = AudioFormat(in_msg.encoding, in_msg.sample_rate)
    out_msg = message.output_audio or in_msg
    out_fmt = AudioFormat(out_msg.encoding, out_msg.sample_rate)
    if out_fmt.encoding == "mulaw" and out_fmt.sample_rate != 8000:
        await output.error(ErrorCode.BAD_MESSAGE, "mu-law output is 8000 Hz only")
        await ws.close(code=1003)
        return
    agent = runtime.agent(agent_id)
    info = SessionInfo(
        tenant_id=agent.tenant_id,
        agent_id=agent.agent_id,
        agent_version=runtime.versions.get(agent.agent_id, 1),
        channel=message.channel,
        language=message.language or agent.language,
        input_format=in_fmt,
        output_format=out_fmt,
        user_id=message.user_id,
        consent=message.consent,
        metadata=message.metadata,
    )
    output = WebSocketOutput(ws, out_fmt)
    try:
        call = await runtime.open_call(info, output)
    except Exception as exc:
        log.exception("could not open a call")
        await output.error(ErrorCode.ENGINE_UNAVAILABLE, f"{type(exc).__name__}: {exc}")
        await ws.close(code=1011)
        return
    await output.send_message(
        StartedMessage(
            protocol=PROTOCOL_VERSION,
            call_id=call.call_id,
            agent_id=agent.agent_id,
            agent_name=agent.agent_name,
            agent_version=info.agent_version,
            audio=in_msg,
            output_audio=out_msg,
        )
    )
    receiver = asyncio.create_task(_receive_loop(ws, output, call, AudioDecoder(in_fmt)))
    try:
        await call.run()
    finally:
        runtime.close_call(call)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver
        output.closed = True
        if ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code=1000)


async def _await_start(
    ws: WebSocket, output: WebSocketOutput, runtime: CallRuntime
) -> tuple[StartMessage, str] | None:
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return None
        if msg.get("bytes") is not None:
            await output.error(ErrorCode.NOT_STARTED, "send a 'start' message before audio")
            continue
        try:
            parsed = parse_client_message(msg.get("text") or "")
        except ProtocolError as exc:
            await output.error(exc.code, exc.message)
            continue
        if isinstance(parsed, PingMessage):
            await output.send_message(PongMessage(id=parsed.id))
            continue
        if isinstance(parsed, StopMessage):
            await ws.close(code=1000)
            return None
        try:
            agent = runtime.agent(parsed.agent_id)
        except KeyError as exc:
            await output.error(ErrorCode.UNKNOWN_AGENT, str(exc.args[0]))
            continue
        return parsed, agent.agent_id


async def _receive_loop(
    ws: WebSocket, output: WebSocketOutput, call: Call, decoder: AudioDecoder
) -> None:
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            data = msg.get("bytes")
            if data is not None:
                try:
                    call.push_audio(decoder.decode(data))
                except ProtocolError as exc:
                    await output.error(exc.code, exc.message)
                continue
            try:
                parsed = parse_client_message(msg.get("text") or "")
            except ProtocolError as exc:
                await output.error(exc.code, exc.message)
                continue
            if isinstance(parsed, StopMessage):
                break
            if isinstance(parsed, PingMessage):
                await output.send_message(PongMessage(id=parsed.id))
            else:
                await output.error(ErrorCode.ALREADY_STARTED, "this call has started already")
    except WebSocketDisconnect:
        pass
    finally:
        output.closed = output.closed or ws.client_state != WebSocketState.CONNECTED
        call.session.end(EndReason.CALLER_HANGUP)
