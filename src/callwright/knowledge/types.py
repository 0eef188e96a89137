"""The knowledge layer's vocabulary: knowledge bases, documents, chunks and search hits.

Plain dataclasses: the stores fill them from rows, the API turns them into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

PUBLIC_TAG = "public"


class KnowledgeError(ValueError):
    """A knowledge request that cannot be served as asked; the message says why."""


class KnowledgeBaseNotFound(KnowledgeError):
    pass


class KnowledgeBaseExists(KnowledgeError):
    pass


@dataclass(slots=True)
class KnowledgeBaseInfo:
    id: int
    tenant_id: str
    name: str
    description: str
    embedder: str  # the vector space (EmbeddingEngine.model_id)
    dims: int
    settings: dict[str, Any]
    revision: int
    created_at: datetime
    updated_at: datetime
    document_count: int = 0
    chunk_count: int = 0


@dataclass(slots=True)
class NewDocument:
    source: str
    mime_type: str
    content_hash: str
    size_bytes: int
    title: str | None = None
    access_tags: list[str] = field(default_factory=lambda: [PUBLIC_TAG])
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class NewChunk:
    ordinal: int
    text: str  # headings line + body: what is embedded, keyword-indexed and quoted
    headings: list[str]
    content_hash: str
    embedding: np.ndarray


@dataclass(slots=True)
class DocumentInfo:
    id: int
    tenant_id: str
    kb_id: int
    source: str
    title: str | None
    mime_type: str
    content_hash: str
    access_tags: list[str]
    metadata: dict[str, Any]
    size_bytes: int
    chunk_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True, frozen=True)
class SearchFilter:
    """Who is asking and what they may see; applied inside each store query.

    `access_tags=None` means no tag filter (operators debugging from the API or CLI);
    a chunk is visible when its tags share at least one with `access_tags`.
    """

    tenant_id: str
    kb_ids: tuple[int, ...]
    access_tags: frozenset[str] | None = frozenset({PUBLIC_TAG})


@dataclass(slots=True)
class ChunkHit:
    chunk_id: int
    kb_id: int
    document_id: int
    ordinal: int
    text: str
    headings: list[str]
    source: str
    title: str | None
    kb_name: str = ""
    vector_score: float | None = None  # cosine similarity to the query
    keyword_score: float | None = None  # the engine's text rank (bm25 / ts_rank), higher is better
    score: float = 0.0  # the final ranking score (fusion or reranker)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "kb": self.kb_name,
            "document_id": self.document_id,
            "source": self.source,
            "title": self.title,
            "headings": self.headings,
            "ordinal": self.ordinal,
            "text": self.text,
            "score": round(self.score, 6),
            "vector_score": None if self.vector_score is None else round(self.vector_score, 4),
            "keyword_score": None if self.keyword_score is None else round(self.keyword_score, 4),
        }
