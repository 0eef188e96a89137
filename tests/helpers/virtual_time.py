"""An asyncio event loop whose clock is virtual: when nothing is ready to run, time
jumps to the next timer instead of waiting for it.

The voice pipeline's tests run on it (see `tests/pipeline/conftest.py`): the session's
`LoopClock`, the pacer's schedule, the scripted engines' delays and the tests' own
`asyncio.sleep`/`wait_for` all read the same virtual time, so a test that streams ten
seconds of caller audio runs in milliseconds and its timing assertions are exact,
whatever else the machine is doing.

Real I/O still works: sockets and the self-pipe are polled without blocking first,
and while work runs in an executor thread the loop waits for it in real time with
the virtual clock standing still (a thread's work takes no virtual time).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

_THREAD_POLL_SECS = 0.005


class _VirtualSelector(selectors.BaseSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if self._loop.threads_busy:
            # an executor thread is working: wait for it for real, time stands still
            wait = _THREAD_POLL_SECS if timeout is None else min(timeout, _THREAD_POLL_SECS)
            return self._real.select(wait)
        if timeout is None:  # no timer at all: only I/O can wake us
            return self._real.select(None)
        self._loop.jump_to_next_timer(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`time()` starts at 0 and moves only when the loop would otherwise sleep."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        self._threads = 0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, secs: float) -> None:
        """Move time on without running anything: a test's way to stall the loop."""
        self._virtual_now += max(0.0, secs)

    def jump_to_next_timer(self, secs: float) -> None:
        """Nothing to run: jump to the earliest timer, to its exact time (not `now +
        secs`, which rounding could leave a hair short of it)."""
        scheduled = self._scheduled  # BaseEventLoop's timer heap
        if scheduled:
            self._virtual_now = max(self._virtual_now, scheduled[0].when())
        else:
            self.advance(secs)

    @property
    def threads_busy(self) -> bool:
        return self._threads > 0

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._threads += 1

        def done(_: asyncio.Future[T]) -> None:
            self._threads -= 1

        future.add_done_callback(done)
        return future
