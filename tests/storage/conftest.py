"""Database fixtures: every repository and migration test runs on SQLite and PostgreSQL.

PostgreSQL tests get a fresh database with a random name on $CALLWRIGHT_TEST_POSTGRES
(default postgresql://postgres@127.0.0.1:5432), dropped afterwards (tests/helpers/postgres.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callwright.storage.calls import CallRepository
from callwright.storage.db import Database
from tests.helpers.postgres import fresh_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database (no schema yet)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'callwright.db'}"
    else:
        async with fresh_postgres_database() as url:
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


@pytest.fixture
async def calls(db: Database) -> CallRepository:
    """The call repository, with tenants acme and globex."""
    repo = CallRepository(db)
    await repo.ensure_tenant("acme", "Acme")
    await repo.ensure_tenant("globex", "Globex")
    return repo
