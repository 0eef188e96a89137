"""A reranker over HTTP: the `/rerank` APIs of text-embeddings-inference (TEI), Cohere
and Jina, which self-hosted cross-encoders (bge-reranker, mxbai) and hosted services
speak. Used by `KnowledgeSearch` to reorder the fused candidates.

No local cross-encoder ships without torch, so the embedded default has none; this
is how a deployment adds one (a GPU box running TEI, or a hosted API).

Wire formats:
  tei:    POST {base_url}/rerank  {"query", "texts", "raw_scores": false}
          -> [{"index": i, "score": s}, ...]
  cohere: POST {base_url}/rerank  {"model", "query", "documents", "top_n"}
          -> {"results": [{"index": i, "relevance_score": s}, ...]}   (Jina: the same)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from callwright.engines.base import EngineError
from callwright.engines.http_clients import LoopClients
from callwright.engines.registry import register
from callwright.knowledge.types import ChunkHit


class HttpReranker:
    name = "http"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api: Literal["tei", "cohere"] = "tei",
        model: str | None = None,
        api_key_env: str = "RERANK_API_KEY",
        timeout_secs: float = 5.0,
        max_retries: int = 2,
    ) -> None:
        if api not in ("tei", "cohere"):
            raise ValueError(f"api must be 'tei' or 'cohere', not {api!r}")
        if api == "cohere" and not model:
            raise ValueError("the cohere rerank API needs a model")
        self.base_url = base_url.rstrip("/")
        self.api = api
        self.model = model
        key = os.environ.get(api_key_env)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout_secs = timeout_secs
        self.max_retries = max_retries
        self._clients = LoopClients(timeout=timeout_secs, headers=self._headers)

    def _http(self) -> httpx.AsyncClient:
        return self._clients.get()

    def _body(self, query: str, texts: list[str]) -> dict[str, Any]:
        if self.api == "tei":
            return {"query": query, "texts": texts, "raw_scores": False}
        return {"model": self.model, "query": query, "documents": texts, "top_n": len(texts)}

    def _scores(self, data: Any, n: int) -> dict[int, float]:
        items = data if self.api == "tei" else (data or {}).get("results")
        key = "score" if self.api == "tei" else "relevance_score"
        if not isinstance(items, list):
            raise EngineError(f"rerank: unexpected response {str(data)[:200]!r}")
        scores: dict[int, float] = {}
        for item in items:
            try:
                index, score = int(item["index"]), float(item[key])
            except (KeyError, TypeError, ValueError):
                raise EngineError(f"rerank: malformed result {str(item)[:200]!r}") from None
            if not 0 <= index < n:
                raise EngineError(f"rerank: index {index} out of range for {n} texts")
            scores[index] = score
        return scores

    async def rerank(self, query: str, hits: Sequence[ChunkHit]) -> list[ChunkHit]:
        if not hits:
            return []
        texts = [h.text for h in hits]
        url = f"{self.base_url}/rerank"
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._http().post(url, json=self._body(query, texts))
            except httpx.HTTPError as exc:
                if attempt < self.max_retries:
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                raise EngineError(f"rerank: {url} unreachable: {exc}") from None
            if response.status_code in (429, 502, 503, 504) and attempt < self.max_retries:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if response.status_code >= 400:
                raise EngineError(f"rerank: HTTP {response.status_code}: {response.text[:300]}")
            try:
                data = response.json()
            except ValueError:
                raise EngineError("rerank: the response is not JSON") from None
            scores = self._scores(data, len(hits))
            # hits the server left out keep their order, after the scored ones
            order = sorted(range(len(hits)), key=lambda i: (i not in scores, -scores.get(i, 0)))
            out = []
            for i in order:
                hit = hits[i]
                hit.score = scores.get(i, float("-inf"))
                out.append(hit)
            return out
        raise EngineError("rerank: retries exhausted")  # pragma: no cover

    async def aclose(self) -> None:
        await self._clients.aclose()


@register("rerank", "http")
def create(**options: Any) -> HttpReranker:
    return HttpReranker(**options)
