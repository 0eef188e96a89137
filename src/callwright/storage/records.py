"""What a call writes, as rows: turn and event inputs, their rows, and the turn upsert.

Its own room because two paths write the same rows: `CallRepository.add_turn` and
`add_events` one at a time, and `CallRepository.write_calls` for the process-wide call
writer, a second's worth of every live call in one transaction. Both must build rows
(UTC timestamps, role checks) and upsert turns exactly alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from callwright.storage.models import TURN_ROLES, Turn, utcnow


@dataclass(slots=True)
class TurnWrite:
    """One side of a turn, as `CallRepository.add_turn` takes it."""

    index: int
    role: str
    text: str
    interrupted: bool = False
    started_at: datetime | None = None
    metrics: Mapping[str, Any] | None = None
    knowledge: Mapping[str, Any] | None = None
    flagged: bool = False


EventInput = tuple[str, Mapping[str, Any], datetime]


@dataclass(slots=True)
class CallWrites:
    """What one call has to write: turns (upserted) and events (appended)."""

    tenant_id: str
    call_id: str
    turns: list[TurnWrite] = field(default_factory=list)
    events: list[EventInput] = field(default_factory=list)


def as_utc(value: datetime | None, name: str) -> datetime:
    """A timezone-aware datetime converted to UTC (now when None); naive ones are refused,
    since guessing their zone shifts timestamps by hours."""
    if value is None:
        return utcnow()
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database dialect {name!r}")


def turn_row(tenant_id: str, call_id: str, t: TurnWrite) -> dict[str, Any]:
    if t.role not in TURN_ROLES:
        raise ValueError(f"role must be one of {TURN_ROLES}, not {t.role!r}")
    return {
        "tenant_id": tenant_id,
        "call_id": call_id,
        "index": t.index,
        "role": t.role,
        "text": t.text,
        "interrupted": t.interrupted,
        "started_at": as_utc(t.started_at, "started_at"),
        "metrics": None if t.metrics is None else dict(t.metrics),
        "knowledge": None if t.knowledge is None else dict(t.knowledge),
        "flagged": t.flagged,
    }


def event_rows(tenant_id: str, call_id: str, events: Sequence[EventInput]) -> list[dict[str, Any]]:
    return [
        {
            "tenant_id": tenant_id,
            "call_id": call_id,
            "type": kind,
            "payload": dict(payload),
            "at": as_utc(at, "at"),
        }
        for kind, payload, at in events
    ]


async def upsert_turns(s: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert turns, replacing any with the same (call, index, role)."""
    for i in range(0, len(rows), 500):  # well under SQLite's bound on parameters
        stmt = insert_for(s)(Turn).values(rows[i : i + 500])
        await s.execute(
            stmt.on_conflict_do_update(
                index_elements=[Turn.call_id, Turn.index, Turn.role],
                set_={
                    "text": stmt.excluded.text,
                    "interrupted": stmt.excluded.interrupted,
                    "started_at": stmt.excluded.started_at,
                    "metrics": stmt.excluded.metrics,
                    "knowledge": stmt.excluded.knowledge,
                    "flagged": stmt.excluded.flagged,
                },
            )
        )
