"""Knowledge stores on a fresh database, for the store contract tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from callwright.knowledge.pg_store import PostgresKnowledgeStore
from callwright.knowledge.sqlite_store import SqliteKnowledgeStore
from callwright.knowledge.store import KnowledgeStore
from callwright.storage.db import Database


@contextlib.asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[KnowledgeStore]:
    """The embedded store (FTS5 + in-memory vectors) on a new SQLite file."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    await db.migrate()
    store = SqliteKnowledgeStore(db)
    await store.ensure_ready()
    try:
        yield store
    finally:
        await store.aclose()
        await db.aclose()


@contextlib.asynccontextmanager
async def postgres_store(url: str) -> AsyncIterator[KnowledgeStore]:
    """The pgvector store on the (empty) database at `url`, migrated first."""
    db = Database(url)
    try:
        await db.migrate()
        store = PostgresKnowledgeStore(db)
        await store.ensure_ready()
        try:
            yield store
        finally:
            await store.aclose()
    finally:
        await db.aclose()
