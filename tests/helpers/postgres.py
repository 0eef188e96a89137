"""Throwaway databases on the PostgreSQL server of $CALLWRIGHT_TEST_POSTGRES.

When the server is unreachable the test is skipped, except under CI (env CI set),
where that is a failure: a CI run that silently skipped them would claim PostgreSQL
support it never tested.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

PG_SERVER = os.environ.get("CALLWRIGHT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


async def admin_connection() -> asyncpg.Connection:
    """A connection to the server's `postgres` database, or a skip (a CI failure)."""
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


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new empty database with a random name (its SQLAlchemy URL), dropped after."""
    name = f"callwright_test_{uuid.uuid4().hex[:12]}"
    conn = await admin_connection()
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
        conn = await admin_connection()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
