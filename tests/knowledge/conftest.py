"""Knowledge store fixtures: the same contract tests run against every store.

`knowledge_store` is parametrised over the embedded SQLite store and the PostgreSQL +
pgvector store (see `pgvector_url` in tests/conftest_pg.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callwright.knowledge.sqlite_store import SqliteKnowledgeStore
from callwright.knowledge.store import KnowledgeStore
from callwright.storage.db import Database


async def _sqlite_store(tmp_path: Path) -> AsyncIterator[KnowledgeStore]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    await db.migrate()
    store = SqliteKnowledgeStore(db)
    await store.ensure_ready()
    try:
        yield store
    finally:
        await store.aclose()
        await db.aclose()


STORE_PARAMS = ["sqlite"]


@pytest.fixture(params=STORE_PARAMS)
async def knowledge_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KnowledgeStore]:
    if request.param == "sqlite":
        async for store in _sqlite_store(tmp_path):
            yield store
    else:  # pragma: no cover - filled in by the PostgreSQL store
        raise AssertionError(request.param)
