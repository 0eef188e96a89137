"""Hybrid search: vector and keyword results fused, optionally reranked, thresholded.

Reciprocal rank fusion (RRF) combines the two lists by rank, so bm25's unbounded
scores and cosine similarities never have to share a scale. Relevance is judged on
the cosine similarity of each hit (keyword hits get theirs filled in by the store):
below `min_score` a hit is dropped, and when nothing is left the caller is told so
rather than handed the least bad passage, which is how a small LLM gets led into
confident nonsense.

A reranker (`engines.base.RerankEngine`) only scores the candidates' texts; the
reordering and the scores the hits carry are decided here, by `rerank`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from callwright.engines.base import EmbeddingEngine, EngineError, RerankEngine
from callwright.knowledge.store import KnowledgeStore
from callwright.knowledge.types import (
    PUBLIC_TAG,
    ChunkHit,
    KnowledgeBaseInfo,
    KnowledgeBaseNotFound,
    KnowledgeError,
    SearchFilter,
)

SearchMode = Literal["hybrid", "vector", "keyword"]


@dataclass(slots=True, frozen=True)
class SearchParams:
    top_k: int = 3
    candidates: int = 20  # taken from each of vector and keyword search before fusion
    mode: SearchMode = "hybrid"
    min_score: float | None = 0.80  # cosine; None keeps everything (debugging)
    # Tuned on the clinic evaluation set (docs/benchmarks.md): callers paraphrase, so
    # keyword ranks count for less than vector ranks, and a small k lets the top ranks
    # of each list dominate.
    rrf_k: int = 10
    keyword_weight: float = 0.3

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.candidates < self.top_k:
            raise ValueError("need 1 <= top_k <= candidates")


@dataclass(slots=True)
class SearchResult:
    query: str
    hits: list[ChunkHit]
    dropped: int = 0  # candidates below the relevance threshold
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def relevant(self) -> bool:
        return bool(self.hits)


def rrf_fuse(
    lists: Sequence[Sequence[ChunkHit]], *, k: int = 60, weights: Sequence[float] | None = None
) -> list[ChunkHit]:
    """Reciprocal rank fusion: score = sum of w / (k + rank) over the lists a hit is in."""
    weights = weights or [1.0] * len(lists)
    fused: dict[int, ChunkHit] = {}
    scores: dict[int, float] = {}
    for hits, weight in zip(lists, weights, strict=True):
        for rank, hit in enumerate(hits, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (k + rank)
            kept = fused.get(hit.chunk_id)
            if kept is None:
                fused[hit.chunk_id] = hit
            else:  # the same chunk from the other list: keep both scores
                kept.vector_score = (
                    kept.vector_score if kept.vector_score is not None else (hit.vector_score)
                )
                kept.keyword_score = (
                    kept.keyword_score if kept.keyword_score is not None else (hit.keyword_score)
                )
    out = sorted(fused.values(), key=lambda h: (-scores[h.chunk_id], h.chunk_id))
    for hit in out:
        hit.score = scores[hit.chunk_id]
    return out


async def rerank(engine: RerankEngine, query: str, hits: Sequence[ChunkHit]) -> list[ChunkHit]:
    """The hits best first by `engine`'s scores, each with `score` set to its score;
    ties (and texts a server left out, scored -inf) keep their incoming order."""
    if not hits:
        return []
    scores = await engine.scores(query, [h.text for h in hits])
    if len(scores) != len(hits):
        raise EngineError(
            f"reranker {engine.name!r} returned {len(scores)} scores for {len(hits)} passages"
        )
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    out = []
    for i in order:
        hit = hits[i]
        hit.score = scores[i]
        out.append(hit)
    return out


class KnowledgeSearch:
    """Searches a tenant's knowledge bases by name, embedding the query once per space."""

    def __init__(
        self,
        store: KnowledgeStore,
        embedders: dict[str, EmbeddingEngine],
        reranker: RerankEngine | None = None,
    ) -> None:
        self.store = store
        self.embedders = embedders  # by model_id
        self.reranker = reranker
        # name -> knowledge base, re-read after KB_TTL_SECS: another process (the CLI)
        # may delete and re-create one under the same name
        self._kbs: dict[tuple[str, str], tuple[float, KnowledgeBaseInfo]] = {}

    KB_TTL_SECS = 2.0

    async def resolve(self, tenant_id: str, names: Sequence[str]) -> list[KnowledgeBaseInfo]:
        out = []
        now = time.monotonic()
        for name in names:
            cached = self._kbs.get((tenant_id, name))
            kb = cached[1] if cached is not None and now - cached[0] < self.KB_TTL_SECS else None
            if kb is None:
                kb = await self.store.get_kb(tenant_id, name)
                if kb is None:
                    raise KnowledgeBaseNotFound(
                        f"knowledge base {name!r} not found in tenant {tenant_id!r}"
                    )
                self._kbs[(tenant_id, name)] = (now, kb)
            out.append(kb)
        return out

    def forget(self, tenant_id: str, name: str) -> None:
        self._kbs.pop((tenant_id, name), None)

    def embedder_for(self, kb: KnowledgeBaseInfo) -> EmbeddingEngine:
        try:
            return self.embedders[kb.embedder]
        except KeyError:
            raise KnowledgeError(
                f"knowledge base {kb.name!r} was embedded with {kb.embedder!r}, which is not "
                f"loaded (loaded: {sorted(self.embedders)})"
            ) from None

    async def search(
        self,
        tenant_id: str,
        kb_names: Sequence[str],
        query: str,
        *,
        access_tags: frozenset[str] | None = frozenset({PUBLIC_TAG}),
        params: SearchParams | None = None,
        reranker: RerankEngine | None = None,
    ) -> SearchResult:
        params = params or SearchParams()
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        query = query.strip()
        if not query:
            return SearchResult(query, [])
        kbs = await self.resolve(tenant_id, kb_names)
        by_space: dict[str, list[KnowledgeBaseInfo]] = {}
        for kb in kbs:
            by_space.setdefault(kb.embedder, []).append(kb)
        lists_vec: list[ChunkHit] = []
        lists_kw: list[ChunkHit] = []
        for group in by_space.values():
            filt = SearchFilter(tenant_id, tuple(kb.id for kb in group), access_tags)
            vector: np.ndarray | None = None
            if params.mode != "keyword" or params.min_score is not None:
                t = time.perf_counter()
                vector = (await self.embedder_for(group[0]).embed_queries([query]))[0]
                timings["embed_ms"] = timings.get("embed_ms", 0.0) + _ms(t)
            t = time.perf_counter()
            vec_hits, kw_hits = await asyncio.gather(
                self.store.vector_search(filt, vector, params.candidates)
                if params.mode != "keyword" and vector is not None
                else _none(),
                self.store.keyword_search(filt, query, params.candidates, query=vector)
                if params.mode != "vector"
                else _none(),
            )
            timings["store_ms"] = timings.get("store_ms", 0.0) + _ms(t)
            lists_vec.extend(vec_hits)
            lists_kw.extend(kw_hits)
        lists_vec.sort(key=lambda h: -(h.vector_score or 0.0))
        lists_kw.sort(key=lambda h: -(h.keyword_score or 0.0))
        if params.mode == "vector":
            ranked = lists_vec
            for h in ranked:
                h.score = h.vector_score or 0.0
        elif params.mode == "keyword":
            ranked = lists_kw
            for h in ranked:
                h.score = h.keyword_score or 0.0
        else:
            ranked = rrf_fuse(
                [lists_vec, lists_kw], k=params.rrf_k, weights=[1.0, params.keyword_weight]
            )
        dropped = 0
        if params.min_score is not None:
            kept = [h for h in ranked if (h.vector_score or 0.0) >= params.min_score]
            dropped = len(ranked) - len(kept)
            ranked = kept
        reranker = reranker or self.reranker
        if reranker is not None and ranked:
            t = time.perf_counter()
            ranked = await rerank(reranker, query, ranked[: params.candidates])
            timings["rerank_ms"] = _ms(t)
        timings["total_ms"] = _ms(t0)
        return SearchResult(query, ranked[: params.top_k], dropped=dropped, timings_ms=timings)


async def _none() -> list[ChunkHit]:
    return []


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)
