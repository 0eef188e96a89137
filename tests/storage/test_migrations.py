"""The hand-written migrations must produce exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Integer, MetaData, inspect, select

from callwright.storage.db import Database, alembic_config
from callwright.storage.models import (
    DEFAULT_TENANT_ID,
    DEFAULT_TENANT_NAME,
    Base,
    Tenant,
    include_in_comparison,
)

TABLES = {
    "tenants",
    "agent_configs",
    "calls",
    "turns",
    "events",
    "knowledge_bases",
    "kb_documents",
    "kb_chunks",
    "kb_jobs",
    "calendar_resources",
    "calendar_bookings",
}
HEAD = "0003"


async def _diffs(db: Database, metadata: MetaData) -> list[Any]:
    def compare(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_in_comparison}
        )
        return list(compare_metadata(ctx, metadata))

    async with db.engine.connect() as conn:
        return await conn.run_sync(compare)


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]


async def test_upgrade_matches_models(empty_db: Database) -> None:
    assert await empty_db.current_revision() is None
    await empty_db.migrate()
    assert await empty_db.current_revision() == HEAD
    assert await _tables(empty_db) >= TABLES
    assert await _diffs(empty_db, Base.metadata) == []


async def test_comparison_detects_drift(db: Database) -> None:
    """Guards the test above: the comparison must notice a model the migration lacks."""
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["calls"].append_column(Column("extra", Integer, nullable=True))
    diffs = await _diffs(db, drifted)
    assert any(d[0] == "add_column" and d[3].name == "extra" for d in diffs), diffs


async def test_default_tenant_and_idempotent_migrate(db: Database) -> None:
    await db.migrate()  # a second run at every start must be a no-op
    async with db.sessions() as s:
        tenants = (await s.execute(select(Tenant))).scalars().all()
    assert [(t.id, t.name) for t in tenants] == [(DEFAULT_TENANT_ID, DEFAULT_TENANT_NAME)]
    assert tenants[0].created_at.tzinfo is not None


async def test_downgrade_to_base_and_up_again(db: Database) -> None:
    await db.downgrade("base")
    assert await db.current_revision() is None
    assert not (TABLES & await _tables(db))
    await db.migrate()
    assert await db.current_revision() == HEAD
    assert await _diffs(db, Base.metadata) == []


async def test_full_text_index_exists(db: Database) -> None:
    """The dialect-only full-text objects the comparison skips are really there."""
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            assert "kb_chunks_fts" in names
        else:
            cols = await conn.run_sync(lambda c: inspect(c).get_columns("kb_chunks"))
            assert "tsv" in {c["name"] for c in cols}
