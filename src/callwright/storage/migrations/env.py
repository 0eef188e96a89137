"""Alembic environment for Callwright.

`Database.migrate()` passes an open connection in `config.attributes["connection"]`, so
migrations join its transaction. Run from the alembic CLI instead (writing a new
revision), the URL comes from `sqlalchemy.url` or $CALLWRIGHT_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection

from callwright.storage.models import Base, include_in_comparison

target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=include_in_comparison,
        # SQLite cannot ALTER most things; batch mode rebuilds tables for later revisions.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    # Through Database, so the SQLite directory and connection pragmas match the app's.
    from callwright.storage.db import Database

    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await db.aclose()


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(
        "CALLWRIGHT_DATABASE_URL"
    )
    if not url:
        from callwright.storage.db import default_database_url

        url = default_database_url()
    return url


if context.is_offline_mode():
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_with_url(_url()))
