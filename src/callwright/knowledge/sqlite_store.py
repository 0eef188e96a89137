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

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from callwright.knowledge.keywords import keyword_terms
from callwright.knowledge.sql_store import SqlKnowledgeStore
from callwright.knowledge.types import ChunkHit, SearchFilter
from callwright.knowledge.vector_index import VectorIndex
from callwright.storage.db import Database
from callwright.storage.models import KnowledgeBase, KnowledgeChunk

log = logging.getLogger(__name__)


class SqliteKnowledgeStore(SqlKnowledgeStore):
    name = "sqlite"
    STALE_CHECK_SECS = 2.0

    def __init__(self, db: Database) -> None:
        if not db.is_sqlite:
            raise ValueError("SqliteKnowledgeStore needs a SQLite database")
        super().__init__(db)
        self.index = VectorIndex()
        self._loaded: dict[str, int] = {}  # tenant -> revision sum loaded
        self._load_locks: dict[str, asyncio.Lock] = {}
        self._checked: dict[str, float] = {}
        self._checking: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        self._background.clear()

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
        self._loaded[tenant_id] += 1

    async def _after_delete(self, tenant_id: str, ids: list[int], kb_id: int | None = None) -> None:
        if tenant_id not in self._loaded:
            return
        self.index.remove(tenant_id, ids)
        # a deleted knowledge base takes its revisions with it: reload on next check
        self._loaded[tenant_id] = -1 if kb_id is not None else self._loaded[tenant_id] + 1

    # ------------------------------------------------------------ the in-memory index
    async def _revision(self, tenant_id: str) -> int:
        async with self.db.sessions() as s:
            value = await s.scalar(
                select(func.coalesce(func.sum(KnowledgeBase.revision), 0)).where(
                    KnowledgeBase.tenant_id == tenant_id
                )
            )
        return int(value or 0)

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
                    self.index.add(
                        tenant_id,
                        [r[0] for r in part],
                        [r[1] for r in part],
                        [r[2] or [] for r in part],
                        np.vstack([r[3] for r in part]),
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
                await self._load(tenant_id)
        finally:
            self._checking.discard(tenant_id)

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
    async def vector_search(
        self, filt: SearchFilter, query: np.ndarray, limit: int
    ) -> list[ChunkHit]:
        await self._ready_index(filt.tenant_id)
        found = self.index.search(filt.tenant_id, query, filt.kb_ids, filt.access_tags, limit)
        async with self.db.sessions() as s:
            return await self._hydrate(s, filt.tenant_id, [(c, v, None) for c, v in found])

    async def keyword_search(
        self, filt: SearchFilter, text_query: str, limit: int, query: np.ndarray | None = None
    ) -> list[ChunkHit]:
        terms = keyword_terms(text_query)
        if not terms or not filt.kb_ids or limit <= 0:
            return []
        match = " OR ".join(json.dumps(t) for t in terms)  # quoted: no FTS5 operators
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
        sql = text(
            "SELECT c.id, -bm25(kb_chunks_fts) AS rank FROM kb_chunks_fts "
            "JOIN kb_chunks AS c ON c.id = kb_chunks_fts.rowid "
            f"WHERE kb_chunks_fts MATCH :match AND c.tenant_id = :tenant "
            f"AND c.kb_id IN ({kb_marks}) {tag_clause} "
            "ORDER BY bm25(kb_chunks_fts) LIMIT :limit"
        )
        if query is not None:
            # before taking a connection: loading the index needs one of its own
            await self._ready_index(filt.tenant_id)
        async with self.db.sessions() as s:
            rows = (await s.execute(sql, params)).all()
            vscores: dict[int, float] = {}
            if query is not None and rows:
                vscores = self.index.scores_for(filt.tenant_id, query, [r[0] for r in rows])
            return await self._hydrate(
                s, filt.tenant_id, [(int(r[0]), vscores.get(int(r[0])), float(r[1])) for r in rows]
            )

    async def chunk_count(self, tenant_id: str) -> int:
        async with self.db.sessions() as s:
            return int(
                await s.scalar(select(func.count()).where(KnowledgeChunk.tenant_id == tenant_id))
                or 0
            )
