"""The engines' HTTP retry policy against a local server that answers from a script:
which statuses and transport failures are retried, how long it waits (the sleep is
injected and recorded, so no test waits for real), and when it gives up."""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from callwright.engines.base import EngineError
from callwright.engines.http_rerank import HttpReranker
from callwright.engines.http_retry import (
    RETRY_STATUSES,
    RetryPolicy,
    Sent,
    TransportFailed,
    retry_after,
    send,
)

# One scripted answer: (status, headers, body), "drop" (close without answering) or
# ("slow", seconds) (answer 200 late). When a script runs out the server answers 200.
Step = tuple[int, dict[str, str], Any] | str | tuple[str, float]


class _Scripted(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, obj: Any, headers: dict[str, str]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        token = self.path.strip("/").split("/")[0]
        with self.server.lock:
            self.server.counts[token] = self.server.counts.get(token, 0) + 1
            script = self.server.scripts.get(token, [])
            step: Step = script.pop(0) if script else (200, {}, {"ok": True})
        if step == "drop":
            self.close_connection = True  # no response: the client sees a disconnect
            return
        if isinstance(step[0], str):  # ("slow", seconds)
            time.sleep(float(step[1]))
            return self._json(200, {"ok": True}, {})
        status, headers, body = step  # type: ignore[misc]
        if token.startswith("rerank"):  # a rerank server once it is up
            body = body if status >= 300 else [{"index": 0, "score": 0.5}]
        self._json(status, body, headers)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    srv.daemon_threads = True
    srv.scripts = {}  # type: ignore[attr-defined]
    srv.counts = {}  # type: ignore[attr-defined]
    srv.lock = threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


class Script:
    """One test's path on the server, the answers it gets there, and what was sent."""

    def __init__(self, srv: ThreadingHTTPServer, steps: list[Step], prefix: str = "t") -> None:
        self.srv, self.token = srv, f"{prefix}{uuid.uuid4().hex}"
        srv.scripts[self.token] = list(steps)  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{srv.server_address[1]}/{self.token}"

    @property
    def requests(self) -> int:
        return int(self.srv.counts.get(self.token, 0))  # type: ignore[attr-defined]


class Recorder:
    """Stands in for `asyncio.sleep`: records each wait, waits for none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as c:
        yield c


def policy(sleep: Recorder, **kw: Any) -> RetryPolicy:
    return RetryPolicy(**{"max_attempts": 3, "backoff": 0.25, "sleep": sleep, **kw})


async def _post(
    client: httpx.AsyncClient, url: str, pol: RetryPolicy, *, stream: bool = False
) -> Sent:
    return await send(
        lambda: client.send(client.build_request("POST", url, json={}), stream=stream), pol
    )


def _status(code: int, **headers: str) -> Step:
    return (code, headers, {"error": {"message": f"status {code}"}})


# ----------------------------------------------------------------------------- statuses
async def test_a_503_then_200_is_retried_after_a_backoff(
    server: ThreadingHTTPServer, client: httpx.AsyncClient
) -> None:
    s, sleep = Script(server, [_status(503)]), Recorder()
    sent = await _post(client, s.url, policy(sleep))
    assert sent.response.status_code == 200 and sent.attempts == 2 and s.requests == 2
    assert len(sleep.waits) == 1 and 0.125 <= sleep.waits[0] <= 0.25  # jittered backoff
    assert sent.note == " (2 attempt(s))"


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
async def test_every_retryable_status_is_retried(
    server: ThreadingHTTPServer, client: httpx.AsyncClient, status: int
) -> None:
    s = Script(server, [_status(status)])
    sent = await _post(client, s.url, policy(Recorder()))
    assert sent.response.status_code == 200 and s.requests == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501, 505])
async def test_a_status_waiting_cannot_fix_fails_at_once(
    server: ThreadingHTTPServer, client: httpx.AsyncClient, status: int
) -> None:
    s, sleep = Script(server, [_status(status)]), Recorder()
    sent = await _post(client, s.url, policy(sleep, max_attempts=5))
    assert sent.response.status_code == status and sent.attempts == 1 and s.requests == 1
    assert sleep.waits == [] and sent.note == ""
    assert sent.response.json() == {"error": {"message": f"status {status}"}}


async def test_an_exhausted_quota_is_not_retried(
    server: ThreadingHTTPServer, client: httpx.AsyncClient
) -> None:
    quota = (429, {}, {"error": {"message": "quota", "code": "insufficient_quota"}})
    s, sleep = Script(server, [quota]), Recorder()
    sent = await _post(client, s.url, policy(sleep))
    assert sent.response.status_code == 429 and s.requests == 1 and sleep.waits == []


async def test_attempts_exhausted_return_the_last_answer(
    server: ThreadingHTTPServer, client: httpx.AsyncClient
) -> None:
    s, sleep = Script(server, [_status(502)] * 5), Recorder()
    sent = await _post(client, s.url, policy(sleep, max_attempts=3, jitter=0.0))
    assert sent.response.status_code == 502 and sent.attempts == 3 and s.requests == 3
    assert sleep.waits == [0.25, 0.5]  # exponential
    assert sent.note == " (3 attempt(s))"


async def test_attempts_exhausted_give_the_engines_error(server: ThreadingHTTPServer) -> None:
    s, sleep = Script(server, [_status(503)] * 5, prefix="rerank"), Recorder()
    r = HttpReranker(base_url=s.url, max_retries=2)
    r.retry = RetryPolicy(max_attempts=3, sleep=sleep)
    with pytest.raises(EngineError, match=r"rerank: HTTP 503: .*status 503.*\(3 attempt\(s\)\)"):
        await r.scores("q", ["a"])
    assert s.requests == 3 and len(sleep.waits) == 2
    fine = Script(server, [_status(503)], prefix="rerank")
    r2 = HttpReranker(base_url=fine.url, retry_backoff=0.001)
    assert await r2.scores("q", ["a"]) == [0.5]  # the engine's own policy retried
    for x in (r, r2):
        await x.aclose()


async def test_a_streamed_answer_is_closed_before_the_retry(
    server: ThreadingHTTPServer, client: httpx.AsyncClient
) -> None:
    s = Script(server, [_status(503)])
    seen: list[httpx.Response] = []

    async def request() -> httpx.Response:
        seen.append(await client.send(client.build_request("POST", s.url), stream=True))
        return seen[-1]

    sent = await send(request, policy(Recorder()))
    assert sent.response is seen[1] and sent.response.status_code == 200
    assert seen[0].is_closed and not seen[1].is_closed  # the caller reads the last one
    await sent.response.aclose()


# ----------------------------------------------------------------------------- waits
def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    exact = RetryPolicy(backoff=0.25, max_backoff=1.0, jitter=0.0)
    assert [exact.backoff_for(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    jittered = RetryPolicy(backoff=0.25, max_backoff=1.0, jitter=0.5)
    waits = [jittered.backoff_for(2) for _ in range(200)]
    assert all(0.25 <= w <= 0.5 for w in waits) and len(set(waits)) > 100
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


async def test_retry_after_seconds_is_honoured(
    server: ThreadingHTTPServer, client: httpx.AsyncClient
) -> None:
    s, sleep = Script(server, [_status(429, **{"Retry-After": "3"})]), Recorder()
    sent = await _post(client, s.url, policy(sleep))
    assert sent.response.status_code == 200 and sleep.waits == [3.0]


async def test_retry_after_ms_is_honoured(
    server: ThreadingHTTPServer, client: httpx.AsyncClient
) -> None:
    s, sleep = Script(server, [_status(503, **{"retry-after-ms": "1500"})]), Recorder()
    assert (await _post(client, s.url, policy(sleep))).attempts == 2
    assert sleep.waits == [1.5]


async def test_retry_after_as_a_date_is_honoured(
    server: ThreadingHTTPServer, client: httpx.AsyncClient
) -> None:
    when = email.utils.formatdate(time.time() + 4, usegmt=True)
    s, sleep = Script(server, [_status(503, **{"Retry-After": when})]), Recorder()
    sent = await _post(client, s.url, policy(sleep))
    assert sent.response.status_code == 200
    assert len(sleep.waits) == 1 and 2.5 < sleep.waits[0] <= 4.0  # the date has whole seconds


@pytest.mark.parametrize("seconds", [3600, None])
async def test_a_retry_after_beyond_the_cap_ends_retrying_at_once(
    server: ThreadingHTTPServer, client: httpx.AsyncClient, seconds: int | None
) -> None:
    value = str(seconds) if seconds else email.utils.formatdate(time.time() + 3600, usegmt=True)
    s, sleep = Script(server, [_status(429, **{"Retry-After": value})]), Recorder()
    sent = await _post(client, s.url, policy(sleep, max_retry_after=20.0))
    assert sent.response.status_code == 429 and s.requests == 1 and sleep.waits == []
    assert sent.retry_after is not None and 3500 < sent.retry_after <= 3600
    assert "not waiting that long" in sent.note


def test_retry_after_parsing() -> None:
    def of(**headers: str) -> float | None:
        return retry_after(httpx.Response(503, headers=headers), now=1_000_000_000.0)

    assert of() is None and of(**{"Retry-After": "soon"}) is None
    assert of(**{"Retry-After": "-5"}) == 0.0
    assert of(**{"Retry-After": "Sun, 09 Sep 2001 01:46:50 GMT"}) == 10.0
    assert of(**{"Retry-After": "Sun, 09 Sep 2001 01:46:30 GMT"}) == 0.0  # in the past
    assert of(**{"retry-after-ms": "250", "Retry-After": "9"}) == 0.25


# ----------------------------------------------------------------------------- transport
async def test_a_dropped_connection_is_retried(
    server: ThreadingHTTPServer, client: httpx.AsyncClient
) -> None:
    s = Script(server, ["drop"])
    sent = await _post(client, s.url, policy(Recorder()))
    assert sent.response.status_code == 200 and sent.attempts == 2 and s.requests == 2


async def test_a_read_timeout_is_not_retried(server: ThreadingHTTPServer) -> None:
    s, sleep = Script(server, [("slow", 0.4)]), Recorder()
    async with httpx.AsyncClient(timeout=0.1) as c:
        with pytest.raises(httpx.ReadTimeout):
            await _post(c, s.url, policy(sleep))
    assert s.requests == 1 and sleep.waits == []


async def test_an_unreachable_server_fails_after_the_last_attempt(
    client: httpx.AsyncClient,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    sleep = Recorder()
    with pytest.raises(TransportFailed) as info:
        await _post(client, f"http://127.0.0.1:{port}/x", policy(sleep, max_attempts=3))
    assert info.value.attempts == 3 and len(sleep.waits) == 2
    assert isinstance(info.value.error, httpx.ConnectError)
    assert str(info.value).startswith("ConnectError")
