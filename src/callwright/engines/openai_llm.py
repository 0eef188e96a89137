"""Any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, OpenAI) over httpx.

This is the production path when a GPU box or a hosted model is available: the
voice pipeline streams `POST {base_url}/chat/completions` with `stream: true` and
reads server-sent events until `[DONE]`. Tool-call fragments are joined by index
and surface as finished `ToolCall`s at the end; servers without a tool parser that
pass a small model's call through as text (llama.cpp's server with Qwen) are
handled by the same text parser the embedded engine uses.

Failures are retried by `http_retry`'s policy (connection failures, 429, 5xx), but
only until the response headers arrive, before the caller sees any of the reply:
after that a retry could repeat a reply the caller has already spoken. Closing the
iterator closes the HTTP stream, which is how servers learn to stop generating.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from callwright.engines.base import ChatMessage, EngineError, LLMDelta, ToolCall, ToolSpec
from callwright.engines.http_clients import LoopClients
from callwright.engines.http_retry import RetryPolicy, Sent, TransportFailed, send
from callwright.engines.registry import register
from callwright.engines.tool_calls import TextToolCallParser, ToolCallAccumulator


class SSEDecoder:
    """Server-sent events from text lines: yields each event's joined `data` field."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def line(self, line: str) -> str | None:
        line = line.rstrip("\r")
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None  # comment / keep-alive
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return data


class OpenAILLM:
    name = "openai"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080/v1",
        model: str = "default",
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        retry_backoff: float = 0.25,
        max_retry_wait_secs: float = 5.0,
        text_tool_calls: bool = True,
        extra_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise EngineError(
                    f"environment variable {api_key_env} (the LLM API key) is not set"
                )
        self._headers = {"Accept": "text/event-stream", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = retry_backoff
        # a caller is waiting on the line: a server asking for longer is reported at once
        self.retry = RetryPolicy(
            max_attempts=self.max_retries + 1,
            backoff=retry_backoff,
            max_retry_after=max_retry_wait_secs,
        )
        self.text_tool_calls = text_tool_calls
        self.extra_body = dict(extra_body or {})
        self._clients = LoopClients(timeout=self._timeout, headers=self._headers)

    def _client(self) -> httpx.AsyncClient:
        return self._clients.get()

    def _body(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        max_tokens: int,
        temperature: float,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_openai() for m in messages],
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": temperature,
            **self.extra_body,
        }
        if tools:
            body["tools"] = [t.to_openai() for t in tools]
        return body

    async def _open(self, body: dict[str, Any]) -> Sent:
        client = self._client()

        async def attempt() -> httpx.Response:
            request = client.build_request("POST", self.url, json=body)
            return await client.send(request, stream=True)

        try:
            return await send(attempt, self.retry)
        except TransportFailed as exc:
            raise EngineError(
                f"cannot reach the LLM server at {self.url} ({exc}; {exc.attempts} attempt(s))"
            ) from exc.error
        except httpx.TimeoutException as exc:
            raise EngineError(f"LLM server at {self.url} timed out: {exc}") from exc
        except httpx.HTTPError as exc:
            raise EngineError(f"LLM request to {self.url} failed: {exc}") from exc

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 256,
        temperature: float = 0.3,
        session_key: str | None = None,
    ) -> AsyncIterator[LLMDelta]:
        sent = await self._open(self._body(messages, tools, max_tokens, temperature))
        response = sent.response
        try:
            if response.status_code >= 400:
                detail = (await response.aread()).decode("utf-8", "replace").strip()
                raise EngineError(
                    f"LLM server at {self.url} answered HTTP {response.status_code}: "
                    f"{detail[:500] or response.reason_phrase}{sent.note}"
                )
            native = ToolCallAccumulator()
            text_calls = (
                TextToolCallParser([t.name for t in tools])
                if tools and self.text_tool_calls
                else None
            )
            finish: str | None = None
            done = False
            sse = SSEDecoder()
            try:
                async for line in response.aiter_lines():
                    data = sse.line(line)
                    if data is None:
                        continue
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    chunk = _parse_chunk(data, self.url)
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        native.add(delta.get("tool_calls"))
                        text = delta.get("content") or ""
                        if text and text_calls is not None:
                            text = text_calls.feed(text)
                        if text:
                            yield LLMDelta(text=text)
                        finish = choice.get("finish_reason") or finish
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                raise EngineError(f"LLM stream from {self.url} broke off: {exc}") from exc
            except httpx.TimeoutException as exc:
                raise EngineError(f"LLM stream from {self.url} timed out: {exc}") from exc
            if not done and finish is None:
                raise EngineError(f"LLM stream from {self.url} ended without finishing")
            calls: list[ToolCall] = native.finish()
            if text_calls is not None:
                if rest := text_calls.flush():
                    yield LLMDelta(text=rest)
                calls += text_calls.calls
            if calls:
                yield LLMDelta(tool_calls=calls)
                finish = "tool_calls"
            yield LLMDelta(finish_reason=finish or "stop")
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._clients.aclose()


def _parse_chunk(data: str, url: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise EngineError(f"LLM server at {url} sent a malformed event: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise EngineError(f"LLM server at {url} sent an unexpected event: {data[:200]!r}")
    if "error" in chunk:
        err = chunk["error"]
        message = err.get("message") if isinstance(err, dict) else err
        raise EngineError(f"LLM server at {url} reported an error: {message}")
    return chunk


@register("llm", "openai")
def create(**options: Any) -> OpenAILLM:
    return OpenAILLM(**options)
