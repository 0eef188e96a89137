"""PostgreSQL-only behaviour of the pgvector store: the searches use the HNSW index,
filtered searches still fill their top k, and a server without pgvector is refused
with a message that says what to do."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, text

from callwright.knowledge.pg_store import PostgresKnowledgeStore, hnsw_index_name
from callwright.knowledge.types import KnowledgeError, NewChunk, NewDocument, SearchFilter
from callwright.storage.db import Database
from tests.helpers.pgvector_server import PgServer, fresh_database
from tests.helpers.postgres import fresh_postgres_database

pytestmark = pytest.mark.postgres

DIMS = 64
DOCS, PER_DOC = 20, 100  # 2000 chunks: enough for the planner to prefer the index


@pytest.fixture
async def pg_store(pgvector_server: PgServer) -> AsyncIterator[PostgresKnowledgeStore]:
    async with fresh_database(pgvector_server) as url:
        db = Database(url)
        try:
            await db.migrate()
            store = PostgresKnowledgeStore(db)
            await store.ensure_ready()
            yield store
        finally:
            await db.aclose()


def _doc(i: int, tags: list[str]) -> NewDocument:
    return NewDocument(
        source=f"doc{i}.md",
        mime_type="text/markdown",
        content_hash=hashlib.sha256(str(i).encode()).hexdigest(),
        size_bytes=1,
        access_tags=tags,
    )


def _row(source: str, ordinal: int) -> int:
    """A hit's row in the generated vectors: source docN.md, ordinal j -> N * PER_DOC + j."""
    return int(source.removeprefix("doc").removesuffix(".md")) * PER_DOC + ordinal


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def _fill(store: PostgresKnowledgeStore) -> tuple[int, np.ndarray, list[bool]]:
    """2000 random chunks; document 0 (5% of them) tagged staff-only. Returns the kb
    id, the vectors in chunk-id order and which of them are staff-only."""
    kb = await store.create_kb("default", "big", embedder="random:64", dims=DIMS)
    rng = np.random.default_rng(7)
    vectors = _unit_rows(rng, DOCS * PER_DOC)
    staff = []
    for d in range(DOCS):
        tags = ["staff"] if d == 0 else ["public"]
        chunks = [
            NewChunk(
                ordinal=j,
                text=f"chunk {d}-{j}",
                headings=[],
                content_hash=f"{d}-{j}",
                embedding=vectors[d * PER_DOC + j],
            )
            for j in range(PER_DOC)
        ]
        await store.replace_document("default", kb.id, _doc(d, tags), chunks)
        staff += [d == 0] * PER_DOC
    async with store.db.engine.begin() as conn:
        await conn.execute(text("ANALYZE kb_chunks"))
    return kb.id, vectors, staff


async def _explain(store: PostgresKnowledgeStore, call: Any) -> str:
    """Run `call()`, then replay the statements it sent, the search under EXPLAIN."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append((statement, params))

    event.listen(store.db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await call()
    finally:
        event.remove(store.db.engine.sync_engine, "before_cursor_execute", capture)
    plan: list[str] = []
    async with store.db.engine.begin() as conn:
        for statement, params in sent:
            if "<=>" in statement and "FROM kb_chunks" in statement:
                result = await conn.exec_driver_sql(f"EXPLAIN {statement}", params)
                plan += [r[0] for r in result.all()]
            else:
                await conn.exec_driver_sql(statement, params)
    assert plan, f"no vector search among {[s for s, _ in sent]}"
    return "\n".join(plan)


async def test_vector_search_uses_the_hnsw_index(pg_store: PostgresKnowledgeStore) -> None:
    kb_id, vectors, _ = await _fill(pg_store)
    query = vectors[123]
    filt = SearchFilter("default", (kb_id,), access_tags=None)
    plan = await _explain(pg_store, lambda: pg_store.vector_search(filt, query, 10))
    assert hnsw_index_name(DIMS) in plan, plan
    hits = await pg_store.vector_search(filt, query, 10)
    exact = np.argsort(-(vectors @ query))[:10]
    scores = [h.vector_score or 0.0 for h in hits]
    assert scores[0] == pytest.approx(1.0, abs=1e-4)  # the query is row 123 itself
    assert scores == sorted(scores, reverse=True)
    found = {_row(h.source, h.ordinal) for h in hits}
    assert len(found & set(exact.tolist())) >= 9  # HNSW recall on an easy set


async def test_filtered_search_fills_its_top_k(pg_store: PostgresKnowledgeStore) -> None:
    """Only 5% of the rows are visible: an index scan that filtered its first
    ef_search (40) candidates would return a handful (5 when measured with iterative
    scans off); the iterative scan keeps going until all k are found."""
    kb_id, vectors, staff = await _fill(pg_store)
    visible = np.flatnonzero(staff)
    query = _unit_rows(np.random.default_rng(11), 1)[0]
    filt = SearchFilter("default", (kb_id,), frozenset({"staff"}))
    plan = await _explain(pg_store, lambda: pg_store.vector_search(filt, query, 20))
    assert hnsw_index_name(DIMS) in plan, plan  # else this would test an exact scan
    hits = await pg_store.vector_search(filt, query, 20)
    assert len(hits) == 20
    assert all(h.source == "doc0.md" for h in hits)
    exact = visible[np.argsort(-(vectors[visible] @ query))[:20]]
    scores = [h.vector_score or 0.0 for h in hits]
    assert scores == sorted(scores, reverse=True)  # relaxed order, sorted again
    assert scores[0] == pytest.approx(float(vectors[exact[0]] @ query), abs=1e-4)
    found = {_row(h.source, h.ordinal) for h in hits}
    assert len(found & set(exact.tolist())) >= 18


async def test_index_per_dimension_recreated_by_ensure_ready(
    pg_store: PostgresKnowledgeStore,
) -> None:
    await pg_store.create_kb("default", "small", embedder="random:16", dims=16)
    await pg_store.create_kb("default", "other", embedder="other:16", dims=16)  # shared

    async def indexes() -> set[str]:
        async with pg_store.db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_kb_chunks_hnsw_%'")
            )
            return {r[0] for r in rows}

    assert await indexes() == {hnsw_index_name(16)}
    async with pg_store.db.engine.begin() as conn:
        await conn.execute(text(f"DROP INDEX {hnsw_index_name(16)}"))
    await pg_store.ensure_ready()
    assert await indexes() == {hnsw_index_name(16)}


async def test_server_without_pgvector_is_refused_clearly() -> None:
    """Debian's PostgreSQL 15 (tests/storage's server) has no pgvector."""
    async with fresh_postgres_database() as url:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                has = await conn.scalar(
                    text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
                )
            if has:
                pytest.skip(f"the server at {url} has pgvector; this needs one without")
            await db.migrate()
            with pytest.raises(KnowledgeError, match=r"has no pgvector: install it") as err:
                await PostgresKnowledgeStore(db).ensure_ready()
            host = db.engine.url.host
            assert f"{host}:{db.engine.url.port}" in str(err.value)
            assert "-pgvector" in str(err.value) and "embedded store" in str(err.value)
        finally:
            await db.aclose()
