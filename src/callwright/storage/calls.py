"""Calls with their turns and events, and the tenants they belong to.

Every query filters by tenant_id, including lookups by primary key, so knowing another
tenant's call id reveals nothing. Results are frozen dataclasses, never ORM objects:
callers on the event loop cannot trigger lazy loads (which fail under asyncio) and
cannot mutate rows by accident. The rows a call writes are built in `records`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callwright.storage.db import Database
from callwright.storage.models import CALL_STATUSES, Call, Event, Tenant, Turn, utcnow
from callwright.storage.records import (
    CallWrites,
    EventInput,
    TurnWrite,
    as_utc,
    event_rows,
    insert_for,
    turn_row,
    upsert_turns,
)

_EVENTS = cast(Table, Event.__table__)  # Core insert: plain executemany, no ORM bookkeeping


class NotFoundError(LookupError):
    """The row does not exist in this tenant (whether or not another tenant has it)."""


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TurnRecord:
    index: int
    role: str
    text: str
    interrupted: bool
    started_at: datetime
    metrics: dict[str, Any] | None
    knowledge: dict[str, Any] | None = None  # passages used, grounding check
    flagged: bool = False  # the grounding check found unsupported facts


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    type: str
    payload: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call; `turns` is filled by get_call (ordered) and left empty by list_calls."""

    id: str
    tenant_id: str
    agent_id: str
    agent_version: int | None
    channel: str
    user_id: str | None
    consent: str
    language: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    recording_uri: str | None
    metadata: dict[str, Any]
    turns: tuple[TurnRecord, ...] = field(default=())


def _turn(row: Turn) -> TurnRecord:
    return TurnRecord(
        index=row.index,
        role=row.role,
        text=row.text,
        interrupted=row.interrupted,
        started_at=row.started_at,
        metrics=row.metrics,
        knowledge=row.knowledge,
        flagged=row.flagged,
    )


def _call(row: Call, turns: Iterable[Turn] = ()) -> CallRecord:
    return CallRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        agent_id=row.agent_id,
        agent_version=row.agent_version,
        channel=row.channel,
        user_id=row.user_id,
        consent=row.consent,
        language=row.language,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        recording_uri=row.recording_uri,
        metadata=row.meta,
        turns=tuple(_turn(t) for t in turns),
    )


# ------------------------------------------------------------------ tenants
class TenantRepository:
    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    async def ensure_tenant(self, tenant_id: str, name: str) -> TenantRecord:
        """Create the tenant unless it exists (an existing name is kept); race-free."""
        async with self._sessions() as s, s.begin():
            upsert = insert_for(s)
            await s.execute(
                upsert(Tenant)
                .values(id=tenant_id, name=name, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=[Tenant.id])
            )
            row = (await s.execute(select(Tenant).where(Tenant.id == tenant_id))).scalar_one()
            return TenantRecord(id=row.id, name=row.name, created_at=row.created_at)

    async def get(self, tenant_id: str) -> TenantRecord | None:
        async with self._sessions() as s:
            row = await s.get(Tenant, tenant_id)
            return None if row is None else TenantRecord(row.id, row.name, row.created_at)


# ------------------------------------------------------------------ calls
class CallRepository:
    """Calls with their turns and events, always scoped to one tenant."""

    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions
        self._tenants = TenantRepository(db)

    async def ensure_tenant(self, tenant_id: str, name: str) -> TenantRecord:
        return await self._tenants.ensure_tenant(tenant_id, name)

    @staticmethod
    async def _require_call(s: AsyncSession, tenant_id: str, call_id: str) -> None:
        found = await s.scalar(
            select(Call.id).where(Call.tenant_id == tenant_id, Call.id == call_id)
        )
        if found is None:
            raise NotFoundError(f"call {call_id!r} not found in tenant {tenant_id!r}")

    async def create_call(
        self,
        tenant_id: str,
        *,
        agent_id: str,
        channel: str,
        agent_version: int | None = None,
        user_id: str | None = None,
        consent: str = "none",
        language: str = "en",
        metadata: Mapping[str, Any] | None = None,
        call_id: str | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Insert an active call and return its id (a new UUID unless `call_id` is given)."""
        call_id = call_id or str(uuid.uuid4())
        async with self._sessions() as s, s.begin():
            s.add(
                Call(
                    id=call_id,
                    tenant_id=tenant_id,
                    agent_id=agent_id,
                    agent_version=agent_version,
                    channel=channel,
                    user_id=user_id,
                    consent=consent,
                    language=language,
                    status="active",
                    started_at=as_utc(started_at, "started_at"),
                    meta=dict(metadata or {}),
                )
            )
        return call_id

    async def finish_call(
        self,
        tenant_id: str,
        call_id: str,
        status: str = "ended",
        end_reason: str | None = None,
        recording_uri: str | None = None,
        *,
        ended_at: datetime | None = None,
    ) -> None:
        """Mark the call ended or failed. A None `recording_uri` keeps any stored one."""
        if status not in CALL_STATUSES or status == "active":
            raise ValueError(f"status must be 'ended' or 'failed', not {status!r}")
        values: dict[str, Any] = {
            "status": status,
            "end_reason": end_reason,
            "ended_at": as_utc(ended_at, "ended_at"),
        }
        if recording_uri is not None:
            values["recording_uri"] = recording_uri
        await self._update_call(tenant_id, call_id, values)

    async def set_recording_uri(self, tenant_id: str, call_id: str, uri: str | None) -> None:
        """Attach (or detach) the recording, which is often uploaded after the call ended."""
        await self._update_call(tenant_id, call_id, {"recording_uri": uri})

    async def _update_call(self, tenant_id: str, call_id: str, values: dict[str, Any]) -> None:
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                update(Call)
                .where(Call.tenant_id == tenant_id, Call.id == call_id)
                .values(**values)
                .returning(Call.id)
            )
            if result.scalar_one_or_none() is None:
                raise NotFoundError(f"call {call_id!r} not found in tenant {tenant_id!r}")

    async def add_turn(
        self,
        tenant_id: str,
        call_id: str,
        *,
        index: int,
        role: str,
        text: str,
        interrupted: bool = False,
        started_at: datetime | None = None,
        metrics: Mapping[str, Any] | None = None,
        knowledge: Mapping[str, Any] | None = None,
        flagged: bool = False,
    ) -> None:
        """Record one side of a turn; writing the same (index, role) again replaces it,
        so a retried or corrected write is harmless."""
        row = turn_row(
            tenant_id,
            call_id,
            TurnWrite(index, role, text, interrupted, started_at, metrics, knowledge, flagged),
        )
        async with self._sessions() as s, s.begin():
            await self._require_call(s, tenant_id, call_id)
            await upsert_turns(s, [row])

    async def add_events(self, tenant_id: str, call_id: str, events: Sequence[EventInput]) -> int:
        """Insert (type, payload, at) events in one transaction and one executemany;
        returns how many were written."""
        if not events:
            return 0
        rows = event_rows(tenant_id, call_id, events)
        async with self._sessions() as s, s.begin():
            await self._require_call(s, tenant_id, call_id)
            await s.execute(_EVENTS.insert(), rows)
        return len(rows)

    async def write_calls(self, batches: Sequence[CallWrites]) -> list[tuple[str, str]]:
        """Write many calls' turns and events in one transaction: the process-wide call
        writer sends a second's worth of every live call here. Turns are upserted by
        (call, index, role) like `add_turn`, so a retried batch is harmless. Rows of calls
        that do not exist are not written; their (tenant_id, call_id) are returned."""
        batches = [b for b in batches if b.turns or b.events]
        if not batches:
            return []
        async with self._sessions() as s, s.begin():
            wanted: dict[str, set[str]] = {}
            for b in batches:
                wanted.setdefault(b.tenant_id, set()).add(b.call_id)
            found: set[tuple[str, str]] = set()
            for tenant_id, ids in wanted.items():
                ids_found = await s.scalars(
                    select(Call.id).where(Call.tenant_id == tenant_id, Call.id.in_(ids))
                )
                found.update((tenant_id, cid) for cid in ids_found)
            turns: dict[tuple[str, int, str], dict[str, Any]] = {}  # last write of a turn wins
            events: list[dict[str, Any]] = []
            missing: list[tuple[str, str]] = []
            for b in batches:
                if (b.tenant_id, b.call_id) not in found:
                    missing.append((b.tenant_id, b.call_id))
                    continue
                for t in b.turns:
                    turns[(b.call_id, t.index, t.role)] = turn_row(b.tenant_id, b.call_id, t)
                events.extend(event_rows(b.tenant_id, b.call_id, b.events))
            await upsert_turns(s, list(turns.values()))
            if events:
                await s.execute(_EVENTS.insert(), events)
        return missing

    async def get_call(self, tenant_id: str, call_id: str) -> CallRecord | None:
        """The call with its turns in conversation order (by index, the user's side first)."""
        async with self._sessions() as s:
            row = (
                await s.execute(select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id))
            ).scalar_one_or_none()
            if row is None:
                return None
            turns = (
                await s.execute(
                    select(Turn)
                    .where(Turn.tenant_id == tenant_id, Turn.call_id == call_id)
                    .order_by(Turn.index, case((Turn.role == "user", 0), else_=1), Turn.id)
                )
            ).scalars()
            return _call(row, turns)

    async def list_calls(
        self,
        tenant_id: str,
        limit: int = 50,
        offset: int = 0,
        agent_id: str | None = None,
    ) -> list[CallRecord]:
        """Newest first (ties broken by id, so pages never overlap); turns not loaded."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        query = select(Call).where(Call.tenant_id == tenant_id)
        if agent_id is not None:
            query = query.where(Call.agent_id == agent_id)
        query = query.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit).offset(offset)
        async with self._sessions() as s:
            return [_call(row) for row in (await s.execute(query)).scalars()]

    async def count_calls(self, tenant_id: str, agent_id: str | None = None) -> int:
        query = select(func.count()).select_from(Call).where(Call.tenant_id == tenant_id)
        if agent_id is not None:
            query = query.where(Call.agent_id == agent_id)
        async with self._sessions() as s:
            return int(await s.scalar(query) or 0)

    async def list_events(
        self, tenant_id: str, call_id: str, types: Sequence[str] | None = None
    ) -> list[EventRecord]:
        """The call's events in time order (insertion order among equal times)."""
        query = select(Event).where(Event.tenant_id == tenant_id, Event.call_id == call_id)
        if types is not None:
            query = query.where(Event.type.in_(types))
        async with self._sessions() as s:
            rows = (await s.execute(query.order_by(Event.at, Event.id))).scalars()
            return [EventRecord(id=e.id, type=e.type, payload=e.payload, at=e.at) for e in rows]

    async def delete_call(self, tenant_id: str, call_id: str) -> bool:
        """Delete the call with its turns and events (retention, erasure requests).
        The recording, if any, is the caller's to delete from its store."""
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                delete(Call)
                .where(Call.tenant_id == tenant_id, Call.id == call_id)
                .returning(Call.id)
            )
            return result.scalar_one_or_none() is not None
