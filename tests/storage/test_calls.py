"""The call repository on SQLite and PostgreSQL: tenant isolation, round trips, batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from callwright.storage.calls import CallRepository, NotFoundError, TenantRepository
from callwright.storage.db import Database
from callwright.storage.models import Turn
from callwright.storage.records import CallWrites, TurnWrite

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def test_ensure_tenant_is_idempotent(db: Database) -> None:
    tenants = TenantRepository(db)
    first = await tenants.ensure_tenant("acme", "Acme")
    again = await tenants.ensure_tenant("acme", "Renamed")
    assert again == first
    assert again.name == "Acme"
    assert again.created_at.tzinfo is not None
    assert await tenants.get("nobody") is None
    assert (await tenants.get("default")) is not None


async def test_tenant_isolation(calls: CallRepository) -> None:
    call_id = await calls.create_call("acme", agent_id="support", channel="web")
    await calls.add_turn("acme", call_id, index=0, role="user", text="secret")
    await calls.add_events("acme", call_id, [("transcript", {"text": "secret"}, T0)])

    # Globex knows the id but must see nothing and change nothing.
    assert await calls.get_call("globex", call_id) is None
    assert await calls.list_calls("globex") == []
    assert await calls.count_calls("globex") == 0
    assert await calls.list_events("globex", call_id) == []
    with pytest.raises(NotFoundError):
        await calls.finish_call("globex", call_id, "ended", "hijack")
    with pytest.raises(NotFoundError):
        await calls.add_turn("globex", call_id, index=1, role="user", text="injected")
    with pytest.raises(NotFoundError):
        await calls.add_events("globex", call_id, [("x", {}, T0)])
    with pytest.raises(NotFoundError):
        await calls.set_recording_uri("globex", call_id, "local:globex/x.wav")
    assert await calls.delete_call("globex", call_id) is False

    call = await calls.get_call("acme", call_id)
    assert call is not None
    assert call.status == "active"
    assert [t.text for t in call.turns] == ["secret"]


async def test_database_refuses_rows_whose_tenant_differs_from_their_call(
    db: Database, calls: CallRepository
) -> None:
    # Defence in depth under the repository: the composite foreign key (and, on SQLite,
    # PRAGMA foreign_keys) rejects a turn filed under another tenant.
    call_id = await calls.create_call("acme", agent_id="support", channel="web")
    with pytest.raises(IntegrityError):
        async with db.sessions() as s, s.begin():
            await s.execute(
                insert(Turn).values(
                    tenant_id="globex",
                    call_id=call_id,
                    index=0,
                    role="user",
                    text="x",
                    interrupted=False,
                    started_at=T0,
                )
            )


async def test_call_round_trip(calls: CallRepository) -> None:
    call_id = await calls.create_call(
        "acme",
        agent_id="support",
        agent_version=2,
        channel="phone",
        user_id="+15550100",
        consent="recording",
        language="de",
        metadata={"from": "+15550100", "tags": ["vip"]},
        started_at=T0,
    )
    # Turns arrive out of order, the assistant side sometimes before the user side.
    await calls.add_turn(
        "acme",
        call_id,
        index=1,
        role="assistant",
        text="Gern.",
        started_at=T0 + timedelta(seconds=5),
        metrics={"voice_to_voice_ms": 612.5, "asr_final_ms": None},
    )
    await calls.add_turn(
        "acme", call_id, index=1, role="user", text="Danke", started_at=T0 + timedelta(seconds=4)
    )
    await calls.add_turn("acme", call_id, index=0, role="assistant", text="Hallo!", started_at=T0)
    # Rewriting a turn replaces it (the caller barged in after all).
    await calls.add_turn(
        "acme",
        call_id,
        index=1,
        role="assistant",
        text="Ge",
        interrupted=True,
        started_at=T0 + timedelta(seconds=5),
        metrics={"voice_to_voice_ms": 612.5},
    )
    # Any time zone in, UTC out.
    cet = timezone(timedelta(hours=1))
    written = await calls.add_events(
        "acme",
        call_id,
        [
            ("user_speech_started", {}, T0 + timedelta(seconds=3)),
            (
                "transcript",
                {"text": "Danke", "final": True},
                (T0 + timedelta(seconds=4)).astimezone(cet),
            ),
            ("turn_metrics", {"turn": 1, "voice_to_voice_ms": 612.5}, T0 + timedelta(seconds=5)),
        ],
    )
    assert written == 3
    assert await calls.add_events("acme", call_id, []) == 0
    await calls.finish_call(
        "acme", call_id, "ended", "caller_hangup", ended_at=T0 + timedelta(seconds=9)
    )
    await calls.set_recording_uri("acme", call_id, f"local:acme/{call_id}.wav")

    call = await calls.get_call("acme", call_id)
    assert call is not None
    assert call.id == call_id
    assert (call.tenant_id, call.agent_id, call.agent_version) == ("acme", "support", 2)
    assert (call.channel, call.user_id, call.consent, call.language) == (
        "phone",
        "+15550100",
        "recording",
        "de",
    )
    assert (call.status, call.end_reason) == ("ended", "caller_hangup")
    assert call.started_at == T0
    assert call.started_at.tzinfo is not None
    assert call.ended_at == T0 + timedelta(seconds=9)
    assert call.recording_uri == f"local:acme/{call_id}.wav"
    assert call.metadata == {"from": "+15550100", "tags": ["vip"]}
    assert [(t.index, t.role, t.text, t.interrupted) for t in call.turns] == [
        (0, "assistant", "Hallo!", False),
        (1, "user", "Danke", False),
        (1, "assistant", "Ge", True),
    ]
    assert call.turns[0].metrics is None
    assert call.turns[2].metrics == {"voice_to_voice_ms": 612.5}
    assert call.turns[1].started_at == T0 + timedelta(seconds=4)

    events = await calls.list_events("acme", call_id)
    assert [e.type for e in events] == ["user_speech_started", "transcript", "turn_metrics"]
    assert events[1].payload == {"text": "Danke", "final": True}
    assert events[1].at == T0 + timedelta(seconds=4)
    assert all(e.at.utcoffset() == timedelta(0) for e in events)
    only = await calls.list_events("acme", call_id, types=["turn_metrics"])
    assert [e.payload["voice_to_voice_ms"] for e in only] == [612.5]

    # finish_call without a URI keeps the one already attached.
    await calls.finish_call("acme", call_id, "failed", "pipeline_error")
    again = await calls.get_call("acme", call_id)
    assert again is not None
    assert (again.status, again.recording_uri) == ("failed", call.recording_uri)


async def test_validation(calls: CallRepository) -> None:
    call_id = await calls.create_call("acme", agent_id="support", channel="sim")
    with pytest.raises(ValueError, match="status"):
        await calls.finish_call("acme", call_id, "active")
    with pytest.raises(ValueError, match="role"):
        await calls.add_turn("acme", call_id, index=0, role="system", text="x")
    with pytest.raises(ValueError, match="naive"):
        await calls.add_events("acme", call_id, [("x", {}, datetime(2025, 1, 1))])
    with pytest.raises(NotFoundError):
        await calls.finish_call("acme", "no-such-call")
    with pytest.raises(ValueError):
        await calls.list_calls("acme", limit=-1)


async def test_list_ordering_and_pagination(calls: CallRepository) -> None:
    ids = []
    for i in range(7):
        ids.append(
            await calls.create_call(
                "acme",
                agent_id="sales" if i % 2 else "support",
                channel="web",
                started_at=T0 + timedelta(minutes=i),
            )
        )
    # Two calls in the same instant: the id breaks the tie, so pages never overlap.
    tie = [
        await calls.create_call(
            "acme",
            agent_id="support",
            channel="web",
            call_id=c,
            started_at=T0 + timedelta(minutes=10),
        )
        for c in ("tie-a", "tie-b")
    ]
    await calls.create_call("globex", agent_id="support", channel="web", started_at=T0)

    newest_first = ["tie-b", "tie-a", *reversed(ids)]
    pages = [await calls.list_calls("acme", limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [[c.id for c in page] for page in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:9],
        [],
    ]
    assert all(c.turns == () for page in pages for c in page)
    assert await calls.count_calls("acme") == 9
    assert set(tie) == {"tie-a", "tie-b"}

    sales = await calls.list_calls("acme", agent_id="sales")
    assert [c.id for c in sales] == [ids[5], ids[3], ids[1]]
    assert await calls.count_calls("acme", agent_id="sales") == 3
    assert [c.id for c in await calls.list_calls("acme", limit=2, agent_id="support")] == [
        "tie-b",
        "tie-a",
    ]


async def test_delete_call_removes_turns_and_events(calls: CallRepository) -> None:
    call_id = await calls.create_call("acme", agent_id="support", channel="web")
    await calls.add_turn("acme", call_id, index=0, role="user", text="hi")
    await calls.add_events("acme", call_id, [("x", {"a": 1}, T0)])
    assert await calls.delete_call("acme", call_id) is True
    assert await calls.get_call("acme", call_id) is None
    assert await calls.list_events("acme", call_id) == []
    assert await calls.delete_call("acme", call_id) is False
    # The cascade really removed the children: the same id can be reused cleanly.
    await calls.create_call("acme", agent_id="support", channel="web", call_id=call_id)
    again = await calls.get_call("acme", call_id)
    assert again is not None
    assert again.turns == ()


async def test_write_calls_batches_many_calls_in_one_transaction(calls: CallRepository) -> None:
    a = await calls.create_call("acme", agent_id="support", channel="web", started_at=T0)
    b = await calls.create_call("globex", agent_id="sales", channel="phone", started_at=T0)
    first = [
        CallWrites(
            "acme",
            a,
            turns=[
                TurnWrite(index=1, role="user", text="Hi", started_at=T0),
                TurnWrite(index=1, role="assistant", text="Hello the", started_at=T0),
                # the same turn again in one batch (barge-in settled it): the last one wins
                TurnWrite(
                    index=1,
                    role="assistant",
                    text="Hello",
                    interrupted=True,
                    started_at=T0,
                    metrics={"voice_to_voice_ms": 700.0},
                    knowledge={"used": [{"chunk_id": "c1"}]},
                    flagged=True,
                ),
            ],
            events=[("transcript", {"text": "Hi"}, T0)],
        ),
        CallWrites("globex", b, events=[("end", {"reason": "caller_hangup"}, T0)]),
        CallWrites("acme", "no-such-call", events=[("end", {}, T0)]),
        CallWrites("globex", a, events=[("end", {}, T0)]),  # a's id, wrong tenant
        CallWrites("acme", b),  # nothing to write: ignored
    ]
    missing = await calls.write_calls(first)
    assert sorted(missing) == [("acme", "no-such-call"), ("globex", a)]
    # a retried batch is harmless: turns are upserted (events are appended again)
    await calls.write_calls(first[:1])
    call_a = await calls.get_call("acme", a)
    assert call_a is not None
    assert [(t.role, t.text, t.interrupted, t.flagged) for t in call_a.turns] == [
        ("user", "Hi", False, False),
        ("assistant", "Hello", True, True),
    ]
    assert call_a.turns[1].metrics == {"voice_to_voice_ms": 700.0}
    assert call_a.turns[1].knowledge == {"used": [{"chunk_id": "c1"}]}
    assert [e.type for e in await calls.list_events("acme", a)] == ["transcript", "transcript"]
    assert [e.payload for e in await calls.list_events("globex", b)] == [
        {"reason": "caller_hangup"}
    ]
    assert await calls.list_events("globex", a) == []
    with pytest.raises(ValueError, match="role"):
        await calls.write_calls([CallWrites("acme", a, turns=[TurnWrite(2, "robot", "x")])])
