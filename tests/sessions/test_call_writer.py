"""The process-wide call writer: every live call's rows in one transaction a second,
nothing lost when the database fails for a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callwright.sessions.call_writer import CallWriter
from callwright.storage.calls import CallRepository
from callwright.storage.db import Database
from callwright.storage.records import TurnWrite

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    await db.migrate()
    await CallRepository(db).ensure_tenant("default", "Default")
    try:
        yield db
    finally:
        await db.aclose()


async def test_rows_of_many_calls_share_one_transaction(db: Database) -> None:
    repo = CallRepository(db)
    ids = [await repo.create_call("default", agent_id="a", channel="web") for _ in range(5)]
    writer = CallWriter(db, flush_every_secs=0.05)
    for k, call_id in enumerate(ids):
        writer.add(
            "default",
            call_id,
            turns=[TurnWrite(index=1, role="user", text=f"caller {k}", started_at=T0)],
            events=[("transcript", {"text": f"caller {k}"}, T0)],
        )
    assert writer.pending("default", ids[0]) == 2
    for _ in range(100):  # the writer's own timer writes them
        await asyncio.sleep(0.02)
        if writer.transactions:
            break
    await asyncio.sleep(0.05)
    assert writer.transactions == 1
    for k, call_id in enumerate(ids):
        call = await repo.get_call("default", call_id)
        assert call is not None
        assert [t.text for t in call.turns] == [f"caller {k}"]
        assert len(await repo.list_events("default", call_id)) == 1
    await writer.aclose()


async def test_a_failed_write_keeps_its_rows_in_order(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = CallRepository(db)
    call_id = await repo.create_call("default", agent_id="a", channel="web")
    writer = CallWriter(db, flush_every_secs=3600)  # flushed by hand below
    real = CallRepository.write_calls
    failures = iter([True])

    async def flaky(self: CallRepository, batches: list) -> list:  # type: ignore[type-arg]
        if next(failures, False):
            raise OSError("database unreachable")
        return await real(self, batches)

    monkeypatch.setattr(CallRepository, "write_calls", flaky)
    writer.add("default", call_id, events=[("transcript", {"n": 1}, T0)])
    assert await writer.flush() is False  # kept for the next try
    writer.add("default", call_id, events=[("transcript", {"n": 2}, T0)])
    assert writer.pending("default", call_id) == 2
    assert await writer.flush_call("default", call_id) is True
    assert [e.payload["n"] for e in await repo.list_events("default", call_id)] == [1, 2]
    assert writer.pending("default", call_id) == 0
    await writer.aclose()


async def test_rows_of_a_deleted_call_do_not_block_the_others(db: Database) -> None:
    repo = CallRepository(db)
    kept = await repo.create_call("default", agent_id="a", channel="web")
    gone = await repo.create_call("default", agent_id="a", channel="web")
    await repo.delete_call("default", gone)
    writer = CallWriter(db, flush_every_secs=3600)
    writer.add("default", gone, events=[("end", {}, T0)])
    writer.add("default", kept, events=[("end", {}, T0)])
    assert await writer.flush() is True
    assert len(await repo.list_events("default", kept)) == 1
    assert writer.pending("default", gone) == 0
    await writer.aclose()
