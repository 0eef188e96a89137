"""The interface every knowledge store fills, and how a config picks one.

A store keeps knowledge bases, documents and chunks, and answers two kinds of search,
each filtered by tenant, knowledge base and access tags inside its own query: nearest
vectors, and keyword (full-text) matches. Fusion, thresholds and reranking live above
it in `knowledge.search`, the same for every store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from callwright.knowledge.types import (
    ChunkHit,
    DocumentInfo,
    KnowledgeBaseInfo,
    NewChunk,
    NewDocument,
    SearchFilter,
)


@runtime_checkable
class KnowledgeStore(Protocol):
    name: str

    async def ensure_ready(self) -> None:
        """Check (and create where needed) what the store needs beyond the migrations."""
        ...

    async def create_kb(
        self,
        tenant_id: str,
        name: str,
        *,
        embedder: str,
        dims: int,
        description: str = "",
        settings: dict[str, Any] | None = None,
    ) -> KnowledgeBaseInfo: ...

    async def get_kb(self, tenant_id: str, name: str) -> KnowledgeBaseInfo | None: ...

    async def list_kbs(self, tenant_id: str) -> list[KnowledgeBaseInfo]: ...

    async def update_kb(
        self,
        tenant_id: str,
        name: str,
        *,
        description: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> KnowledgeBaseInfo | None: ...

    async def delete_kb(self, tenant_id: str, name: str) -> bool: ...

    async def list_documents(self, tenant_id: str, kb_id: int) -> list[DocumentInfo]: ...

    async def get_document(
        self, tenant_id: str, kb_id: int, source: str
    ) -> DocumentInfo | None: ...

    async def find_by_hash(
        self, tenant_id: str, kb_id: int, content_hash: str
    ) -> DocumentInfo | None: ...

    async def chunk_embeddings(
        self, tenant_id: str, kb_id: int, hashes: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Embeddings already stored for these chunk hashes: re-ingest skips the model."""
        ...

    async def replace_document(
        self, tenant_id: str, kb_id: int, doc: NewDocument, chunks: Sequence[NewChunk]
    ) -> DocumentInfo:
        """Insert or replace the document at `doc.source` with these chunks, atomically:
        a reader sees the old chunks or the new ones, never a mix."""
        ...

    async def delete_document(self, tenant_id: str, kb_id: int, document_id: int) -> bool: ...

    async def vector_search(
        self, filt: SearchFilter, query: np.ndarray, limit: int
    ) -> list[ChunkHit]: ...

    async def keyword_search(
        self, filt: SearchFilter, text: str, limit: int, query: np.ndarray | None = None
    ) -> list[ChunkHit]:
        """Full-text matches; with `query`, each hit's cosine similarity is filled in too."""
        ...

    async def aclose(self) -> None: ...
