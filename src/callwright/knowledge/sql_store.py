"""What both relational knowledge stores share: knowledge bases, documents and chunks
through SQLAlchemy, on the platform's own database (same migrations, same tenants).

Subclasses add the two searches in their dialect (`SqliteKnowledgeStore`: FTS5 and
an in-memory vector index; `PostgresKnowledgeStore`: tsvector and pgvector) and may
hook the writes (`_after_replace`, `_after_delete`) to keep an index in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callwright.knowledge.types import (
    ChunkHit,
    DocumentInfo,
    KnowledgeBaseExists,
    KnowledgeBaseInfo,
    KnowledgeError,
    NewChunk,
    NewDocument,
    SearchFilter,
)
from callwright.storage.calls import TenantRepository
from callwright.storage.db import Database
from callwright.storage.models import (
    KnowledgeBase,
    KnowledgeChunk,
    KnowledgeDocument,
    utcnow,
)

_DOC_LOCK_SPACE = 0x4B420001  # first key of the two-key advisory locks on documents


def _kb_info(row: KnowledgeBase, documents: int = 0, chunks: int = 0) -> KnowledgeBaseInfo:
    return KnowledgeBaseInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        description=row.description,
        embedder=row.embedder,
        dims=row.dims,
        settings=dict(row.settings or {}),
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        document_count=documents,
        chunk_count=chunks,
    )


def _doc_info(row: KnowledgeDocument) -> DocumentInfo:
    return DocumentInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        kb_id=row.kb_id,
        source=row.source,
        title=row.title,
        mime_type=row.mime_type,
        content_hash=row.content_hash,
        access_tags=list(row.access_tags or []),
        metadata=dict(row.meta or {}),
        size_bytes=row.size_bytes,
        chunk_count=row.chunk_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlKnowledgeStore:
    name = "sql"

    def __init__(self, db: Database) -> None:
        self.db = db
        self._tenants = TenantRepository(db)

    async def ensure_ready(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    # ------------------------------------------------------------ knowledge bases
    async def create_kb(
        self,
        tenant_id: str,
        name: str,
        *,
        embedder: str,
        dims: int,
        description: str = "",
        settings: dict[str, Any] | None = None,
    ) -> KnowledgeBaseInfo:
        if dims <= 0:
            raise KnowledgeError(f"dims must be positive, got {dims}")
        await self._tenants.ensure_tenant(tenant_id, tenant_id)
        now = utcnow()
        row = KnowledgeBase(
            tenant_id=tenant_id,
            name=name,
            description=description,
            embedder=embedder,
            dims=dims,
            settings=settings or {},
            revision=0,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self.db.sessions() as s, s.begin():
                s.add(row)
                await s.flush()
                await self._after_create_kb(s, row)
        except IntegrityError:
            raise KnowledgeBaseExists(
                f"knowledge base {name!r} already exists in tenant {tenant_id!r}"
            ) from None
        return _kb_info(row)

    async def _after_create_kb(self, s: AsyncSession, kb: KnowledgeBase) -> None:
        return None

    async def _counts(self, s: AsyncSession, kb_ids: list[int]) -> dict[int, tuple[int, int]]:
        if not kb_ids:
            return {}
        docs = await s.execute(
            select(
                KnowledgeDocument.kb_id,
                func.count(),
                func.coalesce(func.sum(KnowledgeDocument.chunk_count), 0),
            )
            .where(KnowledgeDocument.kb_id.in_(kb_ids))
            .group_by(KnowledgeDocument.kb_id)
        )
        return {kb: (int(n), int(c)) for kb, n, c in docs.all()}

    async def get_kb(self, tenant_id: str, name: str) -> KnowledgeBaseInfo | None:
        async with self.db.sessions() as s:
            row = await s.scalar(
                select(KnowledgeBase).where(
                    KnowledgeBase.tenant_id == tenant_id, KnowledgeBase.name == name
                )
            )
            if row is None:
                return None
            counts = await self._counts(s, [row.id])
        return _kb_info(row, *counts.get(row.id, (0, 0)))

    async def list_kbs(self, tenant_id: str) -> list[KnowledgeBaseInfo]:
        async with self.db.sessions() as s:
            rows = (
                await s.scalars(
                    select(KnowledgeBase)
                    .where(KnowledgeBase.tenant_id == tenant_id)
                    .order_by(KnowledgeBase.name)
                )
            ).all()
            counts = await self._counts(s, [r.id for r in rows])
        return [_kb_info(r, *counts.get(r.id, (0, 0))) for r in rows]

    async def update_kb(
        self,
        tenant_id: str,
        name: str,
        *,
        description: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> KnowledgeBaseInfo | None:
        values: dict[str, Any] = {"updated_at": utcnow()}
        if description is not None:
            values["description"] = description
        if settings is not None:
            values["settings"] = settings
        async with self.db.sessions() as s, s.begin():
            await s.execute(
                update(KnowledgeBase)
                .where(KnowledgeBase.tenant_id == tenant_id, KnowledgeBase.name == name)
                .values(**values)
            )
        return await self.get_kb(tenant_id, name)

    async def delete_kb(self, tenant_id: str, name: str) -> bool:
        async with self.db.sessions() as s, s.begin():
            kb = await s.scalar(
                select(KnowledgeBase).where(
                    KnowledgeBase.tenant_id == tenant_id, KnowledgeBase.name == name
                )
            )
            if kb is None:
                return False
            ids = await self._chunk_ids(s, tenant_id, kb_id=kb.id)
            await self._before_delete_chunks(s, ids)
            # explicit deletes: SQLite's cascades depend on a per-connection pragma
            await s.execute(delete(KnowledgeChunk).where(KnowledgeChunk.kb_id == kb.id))
            await s.execute(delete(KnowledgeDocument).where(KnowledgeDocument.kb_id == kb.id))
            await s.execute(delete(KnowledgeBase).where(KnowledgeBase.id == kb.id))
            kb_id = kb.id
        await self._after_delete(tenant_id, ids, kb_id=kb_id)
        return True

    # ------------------------------------------------------------ documents
    async def list_documents(self, tenant_id: str, kb_id: int) -> list[DocumentInfo]:
        async with self.db.sessions() as s:
            rows = (
                await s.scalars(
                    select(KnowledgeDocument)
                    .where(
                        KnowledgeDocument.tenant_id == tenant_id,
                        KnowledgeDocument.kb_id == kb_id,
                    )
                    .order_by(KnowledgeDocument.source)
                )
            ).all()
        return [_doc_info(r) for r in rows]

    async def get_document(self, tenant_id: str, kb_id: int, source: str) -> DocumentInfo | None:
        async with self.db.sessions() as s:
            row = await s.scalar(
                select(KnowledgeDocument).where(
                    KnowledgeDocument.tenant_id == tenant_id,
                    KnowledgeDocument.kb_id == kb_id,
                    KnowledgeDocument.source == source,
                )
            )
        return None if row is None else _doc_info(row)

    async def find_by_hash(
        self, tenant_id: str, kb_id: int, content_hash: str
    ) -> DocumentInfo | None:
        async with self.db.sessions() as s:
            row = await s.scalar(
                select(KnowledgeDocument)
                .where(
                    KnowledgeDocument.tenant_id == tenant_id,
                    KnowledgeDocument.kb_id == kb_id,
                    KnowledgeDocument.content_hash == content_hash,
                )
                .limit(1)
            )
        return None if row is None else _doc_info(row)

    async def chunk_embeddings(
        self, tenant_id: str, kb_id: int, hashes: Sequence[str]
    ) -> dict[str, np.ndarray]:
        if not hashes:
            return {}
        out: dict[str, np.ndarray] = {}
        async with self.db.sessions() as s:
            for start in range(0, len(hashes), 500):
                rows = await s.execute(
                    select(KnowledgeChunk.content_hash, KnowledgeChunk.embedding).where(
                        KnowledgeChunk.tenant_id == tenant_id,
                        KnowledgeChunk.kb_id == kb_id,
                        KnowledgeChunk.content_hash.in_(list(hashes[start : start + 500])),
                    )
                )
                for h, emb in rows.all():
                    out[h] = emb
        return out

    async def _chunk_ids(
        self, s: AsyncSession, tenant_id: str, *, kb_id: int, document_id: int | None = None
    ) -> list[int]:
        q = select(KnowledgeChunk.id).where(
            KnowledgeChunk.tenant_id == tenant_id, KnowledgeChunk.kb_id == kb_id
        )
        if document_id is not None:
            q = q.where(KnowledgeChunk.document_id == document_id)
        return list((await s.scalars(q)).all())

    async def _bump(self, s: AsyncSession, kb_id: int) -> None:
        await s.execute(
            update(KnowledgeBase)
            .where(KnowledgeBase.id == kb_id)
            .values(revision=KnowledgeBase.revision + 1, updated_at=utcnow())
        )

    async def replace_document(
        self, tenant_id: str, kb_id: int, doc: NewDocument, chunks: Sequence[NewChunk]
    ) -> DocumentInfo:
        async with self.db.sessions() as s, s.begin():
            kb = await s.scalar(
                select(KnowledgeBase).where(
                    KnowledgeBase.tenant_id == tenant_id, KnowledgeBase.id == kb_id
                )
            )
            if kb is None:
                raise KnowledgeError(f"knowledge base {kb_id} not found in tenant {tenant_id!r}")
            for c in chunks:
                if c.embedding.shape != (kb.dims,):
                    raise KnowledgeError(
                        f"chunk {c.ordinal} has a {c.embedding.shape} embedding; "
                        f"knowledge base {kb.name!r} holds {kb.dims}-dimension vectors"
                    )
            now = utcnow()
            await self._lock_document(s, kb_id, doc.source)
            row = await s.scalar(
                select(KnowledgeDocument).where(
                    KnowledgeDocument.kb_id == kb_id, KnowledgeDocument.source == doc.source
                )
            )
            old_ids: list[int] = []
            if row is None:
                row = KnowledgeDocument(
                    tenant_id=tenant_id, kb_id=kb_id, source=doc.source, created_at=now
                )
                s.add(row)
            else:
                old_ids = await self._chunk_ids(s, tenant_id, kb_id=kb_id, document_id=row.id)
                await self._before_delete_chunks(s, old_ids)
                await s.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == row.id))
            row.title = doc.title
            row.mime_type = doc.mime_type
            row.content_hash = doc.content_hash
            row.access_tags = list(doc.access_tags)
            row.meta = dict(doc.metadata)
            row.size_bytes = doc.size_bytes
            row.chunk_count = len(chunks)
            row.updated_at = now
            await s.flush()
            new_rows = [
                KnowledgeChunk(
                    tenant_id=tenant_id,
                    kb_id=kb_id,
                    document_id=row.id,
                    ordinal=c.ordinal,
                    text=c.text,
                    headings=list(c.headings),
                    content_hash=c.content_hash,
                    access_tags=list(doc.access_tags),
                    embedding=c.embedding,
                )
                for c in chunks
            ]
            s.add_all(new_rows)
            await s.flush()
            await self._after_insert_chunks(s, new_rows)
            await self._bump(s, kb_id)
            info = _doc_info(row)
        await self._after_replace(tenant_id, kb_id, old_ids, new_rows, list(doc.access_tags))
        return info

    async def delete_document(self, tenant_id: str, kb_id: int, document_id: int) -> bool:
        async with self.db.sessions() as s, s.begin():
            found = await s.scalar(
                select(KnowledgeDocument.id).where(
                    KnowledgeDocument.tenant_id == tenant_id,
                    KnowledgeDocument.kb_id == kb_id,
                    KnowledgeDocument.id == document_id,
                )
            )
            if found is None:
                return False
            ids = await self._chunk_ids(s, tenant_id, kb_id=kb_id, document_id=document_id)
            await self._before_delete_chunks(s, ids)
            await s.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))
            await s.execute(delete(KnowledgeDocument).where(KnowledgeDocument.id == document_id))
            await self._bump(s, kb_id)
        await self._after_delete(tenant_id, ids)
        return True

    # ------------------------------------------------------------ hooks
    async def _lock_document(self, s: AsyncSession, kb_id: int, source: str) -> None:
        """Serialise replaces of one document (SQLite already has a single writer)."""
        if s.get_bind().dialect.name == "postgresql":
            # two syncs of one file (server start-up and the CLI) would otherwise both
            # delete, then both insert: the chunks twice
            await s.execute(
                text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                {"space": _DOC_LOCK_SPACE, "key": f"{kb_id}:{source}"},
            )

    async def _after_insert_chunks(self, s: AsyncSession, rows: list[KnowledgeChunk]) -> None:
        """Inside the write transaction, after the new chunks have ids."""
        return None

    async def _before_delete_chunks(self, s: AsyncSession, ids: list[int]) -> None:
        """Inside the write transaction, before these chunks are deleted."""
        return None

    async def _after_replace(
        self,
        tenant_id: str,
        kb_id: int,
        removed: list[int],
        added: list[KnowledgeChunk],
        tags: list[str],
    ) -> None:
        """After the commit: in-memory indexes follow."""
        return None

    async def _after_delete(self, tenant_id: str, ids: list[int], kb_id: int | None = None) -> None:
        return None

    # ------------------------------------------------------------ hits
    async def _hydrate(
        self, s: AsyncSession, tenant_id: str, scored: list[tuple[int, float | None, float | None]]
    ) -> list[ChunkHit]:
        """Turn (chunk id, vector score, keyword score) into hits, in the given order."""
        if not scored:
            return []
        ids = [c for c, _, _ in scored]
        rows = await s.execute(
            select(
                KnowledgeChunk.id,
                KnowledgeChunk.kb_id,
                KnowledgeChunk.document_id,
                KnowledgeChunk.ordinal,
                KnowledgeChunk.text,
                KnowledgeChunk.headings,
                KnowledgeDocument.source,
                KnowledgeDocument.title,
                KnowledgeBase.name,
            )
            .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
            .join(KnowledgeBase, KnowledgeBase.id == KnowledgeChunk.kb_id)
            # coalesce() keeps SQLite's planner off the tenant index: without statistics
            # it scanned every chunk of the tenant (15 ms at 100k) instead of 20 ids
            .where(
                func.coalesce(KnowledgeChunk.tenant_id, "") == tenant_id,
                KnowledgeChunk.id.in_(ids),
            )
        )
        by_id = {r[0]: r for r in rows.all()}
        hits = []
        for chunk_id, vscore, kscore in scored:
            r = by_id.get(chunk_id)
            if r is None:  # deleted between the search and now
                continue
            hits.append(
                ChunkHit(
                    chunk_id=r[0],
                    kb_id=r[1],
                    document_id=r[2],
                    ordinal=r[3],
                    text=r[4],
                    headings=list(r[5] or []),
                    source=r[6],
                    title=r[7],
                    kb_name=r[8],
                    vector_score=vscore,
                    keyword_score=kscore,
                    score=vscore if vscore is not None else (kscore or 0.0),
                )
            )
        return hits

    async def vector_search(
        self, filt: SearchFilter, query: np.ndarray, limit: int
    ) -> list[ChunkHit]:
        raise NotImplementedError

    async def keyword_search(
        self, filt: SearchFilter, text: str, limit: int, query: np.ndarray | None = None
    ) -> list[ChunkHit]:
        raise NotImplementedError
