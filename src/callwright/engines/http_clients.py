"""One httpx client per event loop, for engines that talk HTTP.

httpx pools connections per event loop: a client made on one loop fails on another
(tests, and the CLI's `asyncio.run`, start several). Engines keep a `LoopClients`
and ask it for the client of the running loop.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx


class LoopClients:
    def __init__(self, **client_options: Any) -> None:
        self._options = client_options
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(**self._options)
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close this loop's client; clients of other loops can only be dropped."""
        current = asyncio.get_running_loop()
        clients = list(self._clients.items())
        self._clients.clear()
        for loop, client in clients:
            if loop is current:
                await client.aclose()
