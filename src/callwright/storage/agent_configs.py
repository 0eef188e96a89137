"""Agent configs, append-only: every change is a new version, and a call records the one it ran.

Its own room because config history is a concern apart from calls: versions are
numbered per (tenant, agent), an unchanged config (same canonical JSON) is not a new
version, and concurrent saves are serialised (an advisory lock on PostgreSQL, a retry
on the unique constraint on SQLite). Every query filters by tenant_id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callwright.storage.db import Database
from callwright.storage.models import AgentConfig, utcnow


@dataclass(frozen=True, slots=True)
class AgentConfigVersion:
    tenant_id: str
    agent_id: str
    version: int
    config: dict[str, Any]
    config_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AgentSummary:
    agent_id: str
    latest_version: int
    updated_at: datetime


def canonical_json(value: Any) -> str:
    """One spelling per JSON value (sorted keys, no whitespace), so equal configs hash equal."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _agent_version(row: AgentConfig) -> AgentConfigVersion:
    return AgentConfigVersion(
        tenant_id=row.tenant_id,
        agent_id=row.agent_id,
        version=row.version,
        config=row.config,
        config_hash=row.config_hash,
        created_at=row.created_at,
    )


_AGENT_LOCK_SPACE = 0x43570001  # first key of the two-key advisory locks on agent configs


async def _lock_agent(s: AsyncSession, tenant_id: str, agent_id: str) -> None:
    """On PostgreSQL, serialize version numbering per agent for this transaction."""
    if s.get_bind().dialect.name != "postgresql":
        return  # SQLite has one writer at a time; save_version retries the rare collision
    digest = hashlib.sha256(f"{tenant_id}\0{agent_id}".encode()).digest()
    await s.execute(
        text("SELECT pg_advisory_xact_lock(:space, :key)"),
        {"space": _AGENT_LOCK_SPACE, "key": int.from_bytes(digest[:4], "big", signed=True)},
    )


class AgentConfigRepository:
    """Append-only agent config history; a call stores the version it ran with."""

    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    async def save_version(self, tenant_id: str, agent_id: str, config: Mapping[str, Any]) -> int:
        """Store `config` as a new version if it differs from the latest; return the version.

        Saving an unchanged config (same canonical JSON) returns the latest version, so
        callers may save on every load. Concurrent saves retry on the unique constraint.
        """
        digest = config_hash(config)
        # Round-trip through canonical JSON: stores plain JSON types (tuples become lists),
        # and refuses NaN or non-JSON values before touching the database.
        document = json.loads(canonical_json(config))
        attempts = 10
        for attempt in range(attempts):
            try:
                async with self._sessions() as s, s.begin():
                    await _lock_agent(s, tenant_id, agent_id)
                    latest = await self._latest_row(s, tenant_id, agent_id)
                    if latest is not None and latest.config_hash == digest:
                        return latest.version
                    version = 1 if latest is None else latest.version + 1
                    s.add(
                        AgentConfig(
                            tenant_id=tenant_id,
                            agent_id=agent_id,
                            version=version,
                            config=document,
                            config_hash=digest,
                            created_at=utcnow(),
                        )
                    )
                return version
            except IntegrityError:
                # Another writer took this version number (SQLite; PostgreSQL serializes
                # on the lock), or the tenant does not exist: then retrying cannot help.
                if attempt == attempts - 1 or await self.latest(tenant_id, agent_id) is None:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    async def _latest_row(s: AsyncSession, tenant_id: str, agent_id: str) -> AgentConfig | None:
        return (
            await s.execute(
                select(AgentConfig)
                .where(AgentConfig.tenant_id == tenant_id, AgentConfig.agent_id == agent_id)
                .order_by(AgentConfig.version.desc())
                .limit(1)
            )
        ).scalar_one_or_none()

    async def latest(self, tenant_id: str, agent_id: str) -> AgentConfigVersion | None:
        async with self._sessions() as s:
            row = await self._latest_row(s, tenant_id, agent_id)
            return None if row is None else _agent_version(row)

    async def get(self, tenant_id: str, agent_id: str, version: int) -> AgentConfigVersion | None:
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(AgentConfig).where(
                        AgentConfig.tenant_id == tenant_id,
                        AgentConfig.agent_id == agent_id,
                        AgentConfig.version == version,
                    )
                )
            ).scalar_one_or_none()
            return None if row is None else _agent_version(row)

    async def list_agents(self, tenant_id: str) -> list[AgentSummary]:
        """Every agent of the tenant with its latest version, ordered by agent id."""
        async with self._sessions() as s:
            rows = await s.execute(
                select(
                    AgentConfig.agent_id,
                    func.max(AgentConfig.version),
                    func.max(AgentConfig.created_at),
                )
                .where(AgentConfig.tenant_id == tenant_id)
                .group_by(AgentConfig.agent_id)
                .order_by(AgentConfig.agent_id)
            )
            return [AgentSummary(agent_id=a, latest_version=v, updated_at=t) for a, v, t in rows]
