"""The pipeline's one source of time, injected so real-time behaviour can be tested in
virtual time.

Everything in `pipeline/` that reads the time or waits (the session's metrics, the
pacer's schedule) goes through a `Clock`. The default is the running event loop's
monotonic clock, so in production nothing changes; the tests run the session on an
event loop whose time is virtual (`tests/helpers/virtual_time.py`), where a second of
conversation takes a few milliseconds and every assertion can be exact.

Turn-taking decisions do not read any clock: they run in audio time (one VAD window
is 32 ms of caller audio), see `pipeline/turns.py`.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds, and a way to wait for them."""

    def now(self) -> float: ...

    async def sleep(self, secs: float) -> None: ...


class LoopClock:
    """The running event loop's clock (`loop.time()`, `asyncio.sleep`)."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    async def sleep(self, secs: float) -> None:
        await asyncio.sleep(secs)
