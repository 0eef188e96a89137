"""Database fixtures: every repository and migration test runs on SQLite and PostgreSQL.

PostgreSQL tests get a fresh database with a random name on $CALLWRIGHT_TEST_POSTGRES
(default postgresql://postgres@127.0.0.1:5432), dropped afterwards. When the server is
unreachable they are skipped, except under CI (env CI set), where that is a failure:
a CI run that silently skipped them would claim PostgreSQL support it never tested.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from callwright.storage.db import Database

PG_SERVER = os.environ.get("CALLWRIGHT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


async def _admin() -> asyncpg.Connection:
    url = make_url(PG_SERVER)
    try:
        return await asyncpg.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            database="postgres",
            timeout=5,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL unreachable at {PG_SERVER} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the PostgreSQL tests must run")
        pytest.skip(reason)


async def _postgres_url() -> AsyncIterator[str]:
    name = f"callwright_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield (
            make_url(PG_SERVER)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        conn = await _admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database (no schema yet)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'callwright.db'}"
    else:
        async for url in _postgres_url():
            yield url


@pytest.fixture
async def empty_db(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.aclose()


@pytest.fixture
async def db(empty_db: Database) -> Database:
    """A migrated database."""
    await empty_db.migrate()
    return empty_db
