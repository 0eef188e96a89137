"""The embedded knowledge store: SQLite tables, FTS5 for keywords, vectors in memory.

Chunks and their embeddings live in the platform's SQLite database (durable, one
file, backed up with everything else). Keyword search is an FTS5 table with Porter
stemming whose rowid is the chunk id, written in the same transaction as the chunk.
Vector search runs on `VectorIndex`, loaded from the table on a tenant's first search
and updated after every committed write; a knowledge base's `revision` counter tells
this process when another one (a CLI ingest beside the server) changed the data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from callwright.knowledge.keywords import keyword_terms, prune_common
from callwright.knowledge.sql_store import SqlKnowledgeStore
from callwright.knowledge.types import ChunkHit, SearchFilter
from callwright.knowledge.vector_index import VectorIndex
from callwright.storage.db import Database
from callwright.storage.models import KnowledgeBase, KnowledgeChunk

log = logging.getLogger(__name__)


class SqliteKnowledgeStore(SqlKnowledgeStore):
    name = "sqlite"
    STALE_CHECK_SECS = 2.0
    INLINE_ROWS = 20_000  # smaller indexes are searched on the loop: cheaper than a thread hop

    def __init__(self, db: Database) -> None:
        if not db.is_sqlite:
            raise ValueError("SqliteKnowledgeStore needs a SQLite database")
        super().__init__(db)
        self.index = VectorIndex()
        # tenant -> the revision signature loaded (None: reload at the next check)
        self._loaded: dict[str, tuple[int, int, int] | None] = {}
        self._load_locks: dict[str, asyncio.Lock] = {}
        self._checked: dict[str, float] = {}
        self._checking: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        # document frequency of each indexed (stemmed) term, from FTS5's vocabulary
        self._df: dict[str, int] = {}
        self._df_total = 0
        self._df_stale = True
        self._df_loading = False
        # Searches read through their own small pool: the main engine has a single
        # connection (SQLite's one writer), and a search must not queue behind a
        # call's batched writes, nor the vector and keyword halves behind each other.
        # WAL mode lets these readers run beside the writer.
        database = make_url(db.url).database
        self._reader: AsyncEngine = (
            create_async_engine(db.url, pool_size=3, max_overflow=2)
            if database not in (None, "", ":memory:") and not str(database).startswith("file:")
            else db.engine
        )

    async def aclose(self) -> None:
        # cancel and wait: a statistics or staleness query still holding a connection
        # when the database closes never finishes (seen as a hung event loop at exit)
        tasks = list(self._background)
        self._background.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._reader is not self.db.engine:
            await self._reader.dispose()

    # ------------------------------------------------------------ write hooks
    async def _after_insert_chunks(self, s: AsyncSession, rows: list[KnowledgeChunk]) -> None:
        if rows:
            await s.execute(
                text("INSERT INTO kb_chunks_fts(rowid, text) VALUES (:id, :text)"),
                [{"id": r.id, "text": r.text} for r in rows],
            )

    async def _before_delete_chunks(self, s: AsyncSession, ids: list[int]) -> None:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join(str(int(i)) for i in part)
            await s.execute(text(f"DELETE FROM kb_chunks_fts WHERE rowid IN ({marks})"))

    async def _after_replace(
        self,
        tenant_id: str,
        kb_id: int,
        removed: list[int],
        added: list[KnowledgeChunk],
        tags: list[str],
    ) -> None:
        if tenant_id not in self._loaded:
            return  # loaded in full on the first search
        self.index.remove(tenant_id, removed)
        if added:
            self.index.add(
                tenant_id,
                [r.id for r in added],
                [r.kb_id for r in added],
                [tags] * len(added),
                np.vstack([r.embedding for r in added]),
            )
        self._loaded[tenant_id] = _bumped(self._loaded[tenant_id])
        self._df_stale = True

    async def _after_delete(self, tenant_id: str, ids: list[int], kb_id: int | None = None) -> None:
        self._df_stale = True
        if tenant_id not in self._loaded:
            return
        self.index.remove(tenant_id, ids)
        # a deleted knowledge base takes its revisions with it: reload on next check
        self._loaded[tenant_id] = None if kb_id is not None else _bumped(self._loaded[tenant_id])

    # ------------------------------------------------------------ the in-memory index
    async def _revision(self, tenant_id: str) -> tuple[int, int, int]:
        """(knowledge bases, sum of their revisions, highest id): any write anywhere
        changes it, a delete-and-recreate included."""
        async with self.db.sessions() as s:
            row = (
                await s.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(KnowledgeBase.revision), 0),
                        func.coalesce(func.max(KnowledgeBase.id), 0),
                    ).where(KnowledgeBase.tenant_id == tenant_id)
                )
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def _load(self, tenant_id: str) -> None:
        lock = self._load_locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            if tenant_id in self._loaded:
                return
            t0 = time.perf_counter()
            revision = await self._revision(tenant_id)
            self.index.clear(tenant_id)
            async with self.db.sessions() as s:
                result = await s.stream(
                    select(
                        KnowledgeChunk.id,
                        KnowledgeChunk.kb_id,
                        KnowledgeChunk.access_tags,
                        KnowledgeChunk.embedding,
                    ).where(KnowledgeChunk.tenant_id == tenant_id)
                )
                async for part in result.partitions(5000):
                    # knowledge bases of one tenant may use embedders of other sizes
                    by_dims: dict[int, list[Any]] = {}
                    for r in part:
                        by_dims.setdefault(int(r[3].shape[0]), []).append(r)
                    for rows in by_dims.values():
                        self.index.add(
                            tenant_id,
                            [r[0] for r in rows],
                            [r[1] for r in rows],
                            [r[2] or [] for r in rows],
                            np.vstack([r[3] for r in rows]),
                        )
            self._loaded[tenant_id] = revision
            self._checked[tenant_id] = time.monotonic()
            log.info(
                "knowledge index for tenant %s: %d chunks in %.2f s",
                tenant_id,
                len(self.index),
                time.perf_counter() - t0,
            )

    async def _check_stale(self, tenant_id: str) -> None:
        try:
            revision = await self._revision(tenant_id)
            if revision != self._loaded.get(tenant_id):
                self._loaded.pop(tenant_id, None)
                self._df_stale = True
                await self._load(tenant_id)
        finally:
            self._checking.discard(tenant_id)

    async def _load_df(self) -> None:
        """Term document frequencies (all tenants: a pruning heuristic, not a filter)."""
        try:
            async with self.db.sessions() as s:
                total = await s.scalar(text("SELECT count(*) FROM kb_chunks_fts"))
                rows = (await s.execute(text("SELECT term, doc FROM kb_chunks_fts_vocab"))).all()
            self._df = {str(t): int(d) for t, d in rows}
            self._df_total = int(total or 0)
        finally:
            self._df_loading = False

    def _refresh_df(self) -> None:
        if self._df_stale and not self._df_loading:
            self._df_stale = False
            self._df_loading = True
            task = asyncio.create_task(self._load_df())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _ready_index(self, tenant_id: str) -> None:
        if tenant_id not in self._loaded:
            await self._load(tenant_id)
            return
        # another process may have written: check now and then, off the search path
        now = time.monotonic()
        if (
            now - self._checked.get(tenant_id, 0.0) >= self.STALE_CHECK_SECS
            and tenant_id not in self._checking
        ):
            self._checked[tenant_id] = now
            self._checking.add(tenant_id)
            task = asyncio.create_task(self._check_stale(tenant_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def refresh(self, tenant_id: str) -> None:
        """Reload a tenant's vectors now (tests, and after a bulk import elsewhere)."""
        self._loaded.pop(tenant_id, None)
        await self._load(tenant_id)

    # ------------------------------------------------------------ search
    # Searches use plain Core statements on one connection, details joined in: at 100k
    # chunks the ORM session and a second hydrating query cost more than the search.
    _HIT_COLUMNS = (
        "c.id, c.kb_id, c.document_id, c.ordinal, c.text, c.headings, d.source, d.title, k.name"
    )
    _HIT_JOINS = (
        "JOIN kb_documents AS d ON d.id = c.document_id JOIN knowledge_bases AS k ON k.id = c.kb_id"
    )

    @staticmethod
    def _hit(row: Sequence[Any], vscore: float | None, kscore: float | None) -> ChunkHit:
        return ChunkHit(
            chunk_id=int(row[0]),
            kb_id=int(row[1]),
            document_id=int(row[2]),
            ordinal=int(row[3]),
            text=row[4],
            headings=list(json.loads(row[5]) if isinstance(row[5], str) else row[5] or []),
            source=row[6],
            title=row[7],
            kb_name=row[8],
            vector_score=vscore,
            keyword_score=kscore,
            score=vscore if vscore is not None else (kscore or 0.0),
        )

    async def vector_search(
        self, filt: SearchFilter, query: np.ndarray, limit: int
    ) -> list[ChunkHit]:
        await self._ready_index(filt.tenant_id)
        args = (filt.tenant_id, query, filt.kb_ids, filt.access_tags, limit)
        if self.index.rows(filt.tenant_id) >= self.INLINE_ROWS:
            # ~10 ms of matrix product at 100k chunks: off the loop (NumPy releases the
            # GIL), so live calls' audio never waits for it and keyword search overlaps
            found = await asyncio.to_thread(self.index.search, *args)
        else:
            found = self.index.search(*args)
        if not found:
            return []
        ids = ",".join(str(c) for c, _ in found)
        # coalesce() keeps SQLite's planner off the tenant index (it would scan the
        # tenant's chunks instead of looking up these ids); the tenant check stays
        sql = text(
            f"SELECT {self._HIT_COLUMNS} FROM kb_chunks AS c {self._HIT_JOINS} "
            f"WHERE c.id IN ({ids}) AND coalesce(c.tenant_id, '') = :tenant"
        )
        async with self._reader.connect() as conn:
            rows = {int(r[0]): r for r in (await conn.execute(sql, {"tenant": filt.tenant_id}))}
        return [self._hit(rows[c], v, None) for c, v in found if c in rows]

    async def keyword_search(
        self, filt: SearchFilter, text_query: str, limit: int, query: np.ndarray | None = None
    ) -> list[ChunkHit]:
        terms = keyword_terms(text_query)
        if not terms or not filt.kb_ids or limit <= 0:
            return []
        if not self._df and self._df_stale:
            self._df_stale = False
            self._df_loading = True
            await self._load_df()  # the first search waits; later refreshes do not
        else:
            self._refresh_df()
        terms = prune_common(terms, self._df, self._df_total)
        if not terms:
            return []  # only very common words: nothing for keywords to rank by
        # each term a quoted FTS5 string (no operators); json.dumps would escape "é"
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        kb_marks = ",".join(str(int(k)) for k in filt.kb_ids)
        params: dict[str, object] = {"match": match, "tenant": filt.tenant_id, "limit": limit}
        tag_clause = ""
        if filt.access_tags is not None:
            if not filt.access_tags:
                return []
            names = []
            for i, tag in enumerate(sorted(filt.access_tags)):
                params[f"tag{i}"] = tag
                names.append(f":tag{i}")
            tag_clause = (
                "AND EXISTS (SELECT 1 FROM json_each(c.access_tags) AS j "
                f"WHERE j.value IN ({','.join(names)}))"
            )
        # rank and filter first, join the details of the top rows only
        sql = text(
            f"SELECT {self._HIT_COLUMNS}, top.rank FROM ("
            "SELECT c.id AS id, -bm25(kb_chunks_fts) AS rank FROM kb_chunks_fts "
            "JOIN kb_chunks AS c ON c.id = kb_chunks_fts.rowid "
            "WHERE kb_chunks_fts MATCH :match AND c.tenant_id = :tenant "
            f"AND c.kb_id IN ({kb_marks}) {tag_clause} "
            "ORDER BY bm25(kb_chunks_fts) LIMIT :limit"
            f") AS top JOIN kb_chunks AS c ON c.id = top.id {self._HIT_JOINS} "
            "ORDER BY top.rank DESC"
        )
        if query is not None:
            await self._ready_index(filt.tenant_id)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(sql, params)).all()
        vscores: dict[int, float] = {}
        if query is not None and rows:
            vscores = self.index.scores_for(filt.tenant_id, query, [int(r[0]) for r in rows])
        return [self._hit(r, vscores.get(int(r[0])), float(r[9])) for r in rows]


def _bumped(signature: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
    """The signature after one more revision of an existing knowledge base."""
    return None if signature is None else (signature[0], signature[1] + 1, signature[2])
