"""A bare HTTP/1.1 server on 127.0.0.1 that records every request and answers what a
test decides: the far end of outbound tools (webhooks, SMS providers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


# (status, JSON body bytes), or None: read the request, then drop the connection
Answer = tuple[int, bytes] | None


class RecordingServer:
    """Subclasses decide the answers (`respond`); every request is kept in order."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Request] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def respond(self, req: Request) -> Answer:
        raise NotImplementedError

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            req = Request(method, target, headers, body)
            self.requests.append(req)
            answer = await self.respond(req)
            if answer is not None:
                status, payload = answer
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(server: RecordingServer) -> AsyncIterator[RecordingServer]:
    """Listen on a free loopback port for as long as the block runs."""
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server
