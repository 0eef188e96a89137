"""A reranker over HTTP: the `/rerank` APIs of text-embeddings-inference (TEI), Cohere
and Jina, which self-hosted cross-encoders (bge-reranker, mxbai) and hosted services
speak. It fills `RerankEngine`: texts in, one score per text out; `knowledge.search`
reorders the fused candidates by them. Transient failures are retried by
`http_retry`'s policy; a server asking to wait longer than `max_retry_wait_secs` is
not waited for, since a caller is on the line.

No local cross-encoder ships without torch, so the embedded default has none; this
is how a deployment adds one (a GPU box running TEI, or a hosted API).

Wire formats:
  tei:    POST {base_url}/rerank  {"query", "texts", "raw_scores": false}
          -> [{"index": i, "score": s}, ...]
  cohere: POST {base_url}/rerank  {"model", "query", "documents", "top_n"}
          -> {"results": [{"index": i, "relevance_score": s}, ...]}   (Jina: the same)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from callwright.engines.base import EngineError
from callwright.engines.http_clients import LoopClients
from callwright.engines.http_retry import RetryPolicy, TransportFailed, send
from callwright.engines.registry import register


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
        retry_backoff: float = 0.2,
        max_retry_wait_secs: float = 2.0,
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
        self.max_retries = max(0, int(max_retries))
        self.retry = RetryPolicy(
            max_attempts=self.max_retries + 1,
            backoff=retry_backoff,
            max_retry_after=max_retry_wait_secs,
        )
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

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, in order; a text the server left out scores -inf."""
        if isinstance(texts, str):
            raise TypeError("score a list of texts, not a single string")
        if not texts:
            return []
        items = list(texts)
        url = f"{self.base_url}/rerank"
        body = self._body(query, items)
        try:
            sent = await send(lambda: self._http().post(url, json=body), self.retry)
        except TransportFailed as exc:
            raise EngineError(
                f"rerank: {url} unreachable: {exc}{_attempts(exc.attempts)}"
            ) from None
        except httpx.TimeoutException as exc:
            raise EngineError(f"rerank: {url} timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise EngineError(f"rerank: {url} unreachable: {exc}") from None
        response = sent.response
        if response.status_code >= 400:
            raise EngineError(
                f"rerank: HTTP {response.status_code}: {response.text[:300]}{sent.note}"
            )
        try:
            data = response.json()
        except ValueError:
            raise EngineError("rerank: the response is not JSON") from None
        scored = self._scores(data, len(items))
        return [scored.get(i, float("-inf")) for i in range(len(items))]

    async def aclose(self) -> None:
        await self._clients.aclose()


def _attempts(n: int) -> str:
    return f" ({n} attempt(s))" if n > 1 else ""


@register("rerank", "http")
def create(**options: Any) -> HttpReranker:
    return HttpReranker(**options)
