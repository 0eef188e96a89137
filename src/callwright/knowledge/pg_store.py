"""The hosted knowledge store: PostgreSQL full-text search and pgvector, one query each.

Embeddings are stored as `real[]` (migration 0002: the schema needs no extension), and
pgvector indexes them through a cast: one partial HNSW expression index per dimension,

    ix_kb_chunks_hnsw_{d} ON kb_chunks USING hnsw ((embedding::vector(d)) vector_cosine_ops)
        WHERE array_length(embedding, 1) = d

so knowledge bases of any embedder share the table. A search repeats that expression
and that predicate verbatim, or the planner cannot use the index. Tenant, knowledge
base and access-tag filters sit in the same WHERE clause, and pgvector 0.8's iterative
index scan keeps walking the graph until the top k survive them: filtering never
costs recall the way filtering an index's first k results would.

Keyword search is an OR of the question's content words as a `tsquery` against the
generated `tsv` column (english stemming, GIN index), ranked by `ts_rank_cd`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Integer, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Row, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callwright.knowledge.keywords import keyword_terms, prune_common, stem_english
from callwright.knowledge.sql_store import SqlKnowledgeStore
from callwright.knowledge.types import ChunkHit, KnowledgeError, SearchFilter
from callwright.storage.db import Database
from callwright.storage.models import KnowledgeBase

# pg_advisory_xact_lock(class, id): serialises CREATE EXTENSION / CREATE INDEX between
# workers starting at once (IF NOT EXISTS is not safe against a concurrent create).
_LOCK_CLASS = 0x4B42  # "KB"
# pgvector's limits: HNSW indexes `vector` up to 2000 dimensions and `halfvec` up to
# 4000; `vector` itself holds 16000. Beyond 4000 a search is an exact scan.
HNSW_VECTOR_MAX = 2000
HNSW_HALFVEC_MAX = 4000
VECTOR_MAX = 16000
EF_SEARCH_MIN = 40
EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search

_NOT_A_WORD = re.compile(r"[\W_]+", re.UNICODE)
_HIT_COLUMNS = "c.kb_id, c.document_id, c.ordinal, c.text, c.headings, d.source, d.title, kb.name"
_HIT_JOINS = (
    "JOIN kb_chunks AS c ON c.id = h.id "
    "JOIN kb_documents AS d ON d.id = c.document_id "
    "JOIN knowledge_bases AS kb ON kb.id = c.kb_id"
)


def hnsw_index_name(dims: int) -> str:
    return f"ix_kb_chunks_hnsw_{int(dims)}"


def _index_type(dims: int) -> tuple[str, str | None]:
    """The SQL type the index (and the search) casts embeddings to, and its opclass."""
    d = int(dims)
    if d <= HNSW_VECTOR_MAX:
        return f"vector({d})", "vector_cosine_ops"
    if d <= HNSW_HALFVEC_MAX:
        return f"halfvec({d})", "halfvec_cosine_ops"
    return f"vector({d})", None


def _indexed(column: str, dims: int) -> str:
    """`(column::vector(d))`: the index expression, to be repeated exactly by searches."""
    return f"({column}::{_index_type(dims)[0]})"


def _has_dims(column: str, dims: int) -> str:
    """The partial-index predicate; a literal, or the planner cannot match it."""
    return f"array_length({column}, 1) = {int(dims)}"


def vector_literal(query: np.ndarray) -> str:
    """pgvector's text form, '[x,y,...]': no client-side codec needed."""
    vec = np.asarray(query, dtype=np.float32).reshape(-1)
    if vec.size == 0 or not np.all(np.isfinite(vec)):
        raise KnowledgeError("the query vector is empty or not finite")
    return "[" + ",".join(f"{float(x):.9g}" for x in vec) + "]"


def tsquery_text(terms: Sequence[str]) -> str:
    """Content words as an OR `to_tsquery` input; anything but letters and digits is
    removed first, so no term can carry tsquery syntax (& | ! : * ' ( ) <->)."""
    words = [w for w in (_NOT_A_WORD.sub("", t) for t in terms) if w]
    return " | ".join(dict.fromkeys(words))


class PostgresKnowledgeStore(SqlKnowledgeStore):
    name = "postgresql"

    DF_REFRESH_SECS = 60.0

    def __init__(self, db: Database) -> None:
        if db.dialect != "postgresql":
            raise ValueError("PostgresKnowledgeStore needs a PostgreSQL database")
        super().__init__(db)
        # term document frequencies from ts_stat, refreshed in the background: the
        # same pruning of very common terms as the embedded store (keywords.py)
        self._df: dict[str, int] = {}
        self._df_total = 0
        self._df_at = 0.0
        self._df_stale = True
        self._df_task: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        task, self._df_task = self._df_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=5)
        await super().aclose()

    async def _load_df(self) -> None:
        try:
            async with self.db.sessions() as s:
                total = await s.scalar(text("SELECT count(*) FROM kb_chunks"))
                rows = (
                    await s.execute(
                        text("SELECT word, ndoc FROM ts_stat('SELECT tsv FROM kb_chunks')")
                    )
                ).all()
            self._df = {str(w): int(n) for w, n in rows}
            self._df_total = int(total or 0)
        except Exception:  # statistics only make searches cheaper; never fail one
            logging.getLogger(__name__).warning("could not read term statistics", exc_info=True)
        finally:
            self._df_at = time.monotonic()
            self._df_task = None

    def _refresh_df(self) -> None:
        """Other processes write too: refresh at most once a minute, and after writes."""
        due = self._df_stale or time.monotonic() - self._df_at > self.DF_REFRESH_SECS
        if due and self._df_task is None:
            self._df_stale = False
            self._df_task = asyncio.create_task(self._load_df())

    async def _after_replace(
        self,
        tenant_id: str,
        kb_id: int,
        removed: list[int],
        added: list[Any],
        tags: list[str],
    ) -> None:
        self._df_stale = True

    async def _after_delete(self, tenant_id: str, ids: list[int], kb_id: int | None = None) -> None:
        self._df_stale = True

    def _server(self) -> str:
        url = make_url(self.db.url)
        return f"{url.host or 'localhost'}:{url.port or 5432}"

    # ------------------------------------------------------------ setup
    async def ensure_ready(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:c, 0)"), {"c": _LOCK_CLASS})
            installed = await conn.scalar(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            )
            if installed is None:
                await self._create_extension(conn)
            dims = (await conn.scalars(text("SELECT DISTINCT dims FROM knowledge_bases"))).all()
            for d in dims:
                await self._ensure_index(conn, int(d))

    async def _create_extension(self, conn: AsyncConnection) -> None:
        available = await conn.scalar(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        )
        if available is None:
            version = int(await conn.scalar(text("SHOW server_version_num")) or 0)
            raise KnowledgeError(
                f"the PostgreSQL server at {self._server()} has no pgvector: install it "
                f"(e.g. postgresql-{version // 10000}-pgvector) or use the "
                "embedded store"
            )
        try:
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:
            raise KnowledgeError(
                f"cannot create the pgvector extension on the PostgreSQL server at "
                f"{self._server()} ({exc.orig}): run `CREATE EXTENSION vector` there "
                "once as a superuser"
            ) from None

    async def _ensure_index(self, conn: AsyncConnection | AsyncSession, dims: int) -> None:
        """The HNSW index for `dims`, unless there is one (checked first: CREATE INDEX
        locks writers out of kb_chunks even when the index exists)."""
        opclass = _index_type(dims)[1]
        if opclass is None:
            return
        name = hnsw_index_name(dims)
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:c, :d)"), {"c": _LOCK_CLASS, "d": int(dims)}
        )
        if await conn.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}):
            return
        await conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {name} ON kb_chunks "
                f"USING hnsw ({_indexed('embedding', dims)} {opclass}) "
                f"WHERE {_has_dims('embedding', dims)}"
            )
        )

    async def _after_create_kb(self, s: AsyncSession, kb: KnowledgeBase) -> None:
        if kb.dims > VECTOR_MAX:
            raise KnowledgeError(f"pgvector holds at most {VECTOR_MAX} dimensions, not {kb.dims}")
        await self._ensure_index(s, kb.dims)

    # ------------------------------------------------------------ search
    @staticmethod
    def _filters(filt: SearchFilter, params: dict[str, Any]) -> str | None:
        """The WHERE conditions every search shares; None when nothing can match."""
        if not filt.kb_ids:
            return None
        params["tenant"] = filt.tenant_id
        params["kbs"] = [int(k) for k in filt.kb_ids]
        where = "c.tenant_id = :tenant AND c.kb_id = ANY(:kbs)"
        if filt.access_tags is not None:
            if not filt.access_tags:
                return None
            params["tags"] = sorted(filt.access_tags)
            where += " AND c.access_tags ?| :tags"  # GIN-indexable, unlike jsonb_exists_any
        return where

    @staticmethod
    def _binds(params: dict[str, Any]) -> list[Any]:
        binds = [
            bindparam("tenant", type_=Text),
            bindparam("kbs", type_=ARRAY(BigInteger)),
            bindparam("limit", type_=Integer),
        ]
        if "tags" in params:
            binds.append(bindparam("tags", type_=ARRAY(Text)))
        return binds

    @staticmethod
    def _hit(row: Row[Any], vscore: float | None, kscore: float | None) -> ChunkHit:
        return ChunkHit(
            chunk_id=int(row.id),
            kb_id=int(row.kb_id),
            document_id=int(row.document_id),
            ordinal=int(row.ordinal),
            text=row.text,
            headings=list(row.headings or []),
            source=row.source,
            title=row.title,
            kb_name=row.name,
            vector_score=vscore,
            keyword_score=kscore,
            score=vscore if vscore is not None else (kscore or 0.0),
        )

    async def vector_search(
        self, filt: SearchFilter, query: np.ndarray, limit: int
    ) -> list[ChunkHit]:
        params: dict[str, Any] = {"limit": int(limit)}
        where = self._filters(filt, params)
        if where is None or limit <= 0:
            return []
        dims = int(np.asarray(query).reshape(-1).shape[0])
        if dims > VECTOR_MAX:
            return []  # no knowledge base here can hold such vectors
        params["q"] = vector_literal(query)
        sql_type, opclass = _index_type(dims)
        # The inner query is the index scan: its ORDER BY and predicate match the index
        # exactly. Relaxed iterative scans may return the k slightly out of order, so
        # the outer query sorts them again (k rows) while joining in the details.
        sql = (
            text(
                f"SELECT h.id, h.distance, {_HIT_COLUMNS} FROM ("
                f"SELECT c.id, {_indexed('c.embedding', dims)} <=> CAST(:q AS {sql_type}) "
                "AS distance FROM kb_chunks AS c "
                f"WHERE {where} AND {_has_dims('c.embedding', dims)} "
                f"ORDER BY distance LIMIT :limit) AS h {_HIT_JOINS} "
                "ORDER BY h.distance, h.id"
            )
            .bindparams(*self._binds(params), bindparam("q", type_=Text))
            .columns(headings=JSONB)
        )
        async with self.db.sessions() as s:
            if opclass is not None:
                ef = min(EF_SEARCH_MAX, max(EF_SEARCH_MIN, 2 * int(limit)))
                await s.execute(
                    text(
                        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                        "set_config('hnsw.ef_search', :ef, true)"
                    ),
                    {"ef": str(ef)},
                )
            rows = (await s.execute(sql, params)).all()
        return [self._hit(r, _cosine(r.distance), None) for r in rows]

    async def keyword_search(
        self, filt: SearchFilter, text_query: str, limit: int, query: np.ndarray | None = None
    ) -> list[ChunkHit]:
        params: dict[str, Any] = {"limit": int(limit)}
        where = self._filters(filt, params)
        self._refresh_df()
        words = prune_common(
            keyword_terms(text_query), self._df, self._df_total, stemmer=stem_english
        )
        terms = tsquery_text(words)
        if where is None or limit <= 0 or not terms:
            return []
        params["terms"] = terms
        binds = [*self._binds(params), bindparam("terms", type_=Text)]
        cosine = "NULL::float8"
        if query is not None:
            dims = int(np.asarray(query).reshape(-1).shape[0])
            if dims <= VECTOR_MAX:
                params["q"] = vector_literal(query)
                binds.append(bindparam("q", type_=Text))
                # only for the k hits (outer query), and only where the sizes agree
                cosine = (
                    f"CASE WHEN {_has_dims('c.embedding', dims)} THEN "
                    f"1 - ((c.embedding::vector({dims})) <=> CAST(:q AS vector({dims}))) END"
                )
        sql = (
            text(
                f"SELECT h.id, h.rank, {cosine} AS cosine, {_HIT_COLUMNS} FROM ("
                "SELECT c.id, ts_rank_cd(c.tsv, tq.q) AS rank "
                "FROM kb_chunks AS c, to_tsquery('english', :terms) AS tq(q) "
                f"WHERE c.tsv @@ tq.q AND {where} "
                "ORDER BY rank DESC, c.id LIMIT :limit) AS h "
                f"{_HIT_JOINS} ORDER BY h.rank DESC, h.id"
            )
            .bindparams(*binds)
            .columns(headings=JSONB)
        )
        async with self.db.sessions() as s:
            rows = (await s.execute(sql, params)).all()
        return [
            self._hit(r, None if r.cosine is None else float(r.cosine), float(r.rank)) for r in rows
        ]


def _cosine(distance: Any) -> float | None:
    if distance is None or math.isnan(float(distance)):
        return None
    return 1.0 - float(distance)
