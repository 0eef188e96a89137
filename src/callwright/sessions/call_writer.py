"""One storage writer for every call in the process.

Calls hand their turns and events to the writer on the event loop (never awaiting);
the writer puts a second's worth of all live calls into one transaction. The first
version had a writer task per call, each with its own transactions: at 100 calls on
one core that was ~60 transactions a second, and their SQLAlchemy and aiosqlite work
competed with the audio path for the core (docs/benchmarks.md, capacity).

A failed write keeps its rows for the next try; a call whose row is gone (deleted
while it ran) loses its rows with an error in the log instead of blocking the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from callwright.storage.calls import CallRepository
from callwright.storage.db import Database
from callwright.storage.records import CallWrites, EventInput, TurnWrite

log = logging.getLogger(__name__)


class CallWriter:
    FLUSH_EVERY_SECS = 1.0

    def __init__(self, db: Database, flush_every_secs: float | None = None) -> None:
        self.db = db
        self.flush_every = self.FLUSH_EVERY_SECS if flush_every_secs is None else flush_every_secs
        self._pending: dict[tuple[str, str], CallWrites] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one transaction at a time, in order
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0

    def add(
        self,
        tenant_id: str,
        call_id: str,
        *,
        turns: list[TurnWrite] | None = None,
        events: list[EventInput] | None = None,
    ) -> None:
        """Queue rows of one call; called on the loop, never blocks."""
        if not turns and not events:
            return
        batch = self._pending.get((tenant_id, call_id))
        if batch is None:
            batch = self._pending[(tenant_id, call_id)] = CallWrites(tenant_id, call_id)
        batch.turns.extend(turns or ())
        batch.events.extend(events or ())
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-writer")

    def pending(self, tenant_id: str, call_id: str) -> int:
        """Rows of one call not yet written."""
        b = self._pending.get((tenant_id, call_id))
        return 0 if b is None else len(b.turns) + len(b.events)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_every)  # gather a second's worth of every call
            self._wake.clear()
            await self.flush()

    async def flush(self) -> bool:
        """Write everything queued; on failure keep it for the next try. True when clean."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return True
            try:
                missing = await CallRepository(self.db).write_calls(list(pending.values()))
            except Exception:
                log.warning(
                    "could not persist %d calls yet; will retry", len(pending), exc_info=True
                )
                for key, batch in pending.items():  # older rows first, then what came since
                    newer = self._pending.get(key)
                    if newer is not None:
                        batch.turns.extend(newer.turns)
                        batch.events.extend(newer.events)
                self._pending = {**self._pending, **pending}
                self._wake.set()
                return False
            finally:
                self.transactions += 1
            for tenant_id, call_id in missing:
                log.error(
                    "call %s of tenant %s no longer exists: its rows are dropped",
                    call_id,
                    tenant_id,
                )
            return True

    async def flush_call(self, tenant_id: str, call_id: str, attempts: int = 6) -> bool:
        """At a call's end: write its rows now (with everyone else's), retrying with backoff."""
        for attempt in range(attempts):
            if await self.flush() and self.pending(tenant_id, call_id) == 0:
                return True
            await asyncio.sleep(0.2 * 2**attempt)
        log.error(
            "gave up persisting %d rows of call %s", self.pending(tenant_id, call_id), call_id
        )
        return False

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
