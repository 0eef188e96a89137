"""Webhook tools against a real HTTP server on 127.0.0.1 that records every request.

The server books once per Idempotency-Key, like a receiver that de-duplicates: a
retried POST must reach it with the same key and find its booking already made.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callwright.actions.gateway import ToolAudit, ToolGateway, ToolStatus
from callwright.actions.tools import ToolCallContext, ToolRegistry
from callwright.actions.webhooks import (
    WebhookConfigError,
    WebhookPolicy,
    fill_url,
    idempotency_key,
    load_webhook_tools,
)
from tests.helpers.http_recorder import Answer, RecordingServer, Request, serving

LOCAL = WebhookPolicy(private_hosts=frozenset({"127.0.0.1"}))
SECRET = "whsec-test-0123456789"
TOKEN = "tok-abc-secret"


# --- a recording HTTP/1.1 server ---------------------------------------------------------


class Server(RecordingServer):
    """Books once per idempotency key; the path picks a misbehaviour."""

    def __init__(self) -> None:
        super().__init__()
        self.bookings: dict[str, int] = {}  # idempotency key -> booking id
        self.failed_once: set[str] = set()
        self.release = asyncio.Event()

    def url(self, path: str) -> str:
        return self.base_url + path

    async def respond(self, req: Request) -> Answer:
        path = req.target.split("?", 1)[0]  # the case is the first segment
        if path.startswith("/slow"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 5)
            return 200, b"{}"
        if path.startswith("/bad"):
            return 400, b'{"error": "no such clinic"}'
        if path.startswith("/big"):
            return 200, b"x" * 70_000
        if path.startswith("/text"):
            return 200, b"plain words " * 200
        key = req.headers.get("idempotency-key", "")
        booking = self.bookings.setdefault(key, len(self.bookings) + 1)
        if path.startswith("/flaky") and key not in self.failed_once:
            self.failed_once.add(key)  # booked, but the answer is lost on the way back
            return 503, b"overloaded"
        return 200, json.dumps({"say": f"Booked, reference {booking}.", "id": booking}).encode()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    async with serving(srv):
        yield srv
        srv.release.set()


# --- helpers --------------------------------------------------------------------------------

BOOK = """
name: book_visit
description: Book a visit at a clinic.
parameters:
  type: object
  properties:
    clinic: {type: string}
    date: {type: string}
    name: {type: string}
  required: [clinic, date]
  additionalProperties: false
method: POST
url: "URL/v1/clinics/{clinic}/book?date={date}"
headers:
  Authorization: "Bearer ${BOOKING_TOKEN}"
  X-Source: callwright
timeout_secs: 2
sign_secret_env: BOOKING_SECRET
redact: [name]
"""


def tools_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "tools"
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def book_file(url: str, **replace: str) -> str:
    text = BOOK.replace("URL", url)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def gateway(registry: ToolRegistry, audits: list[ToolAudit], *tools: str) -> ToolGateway:
    return ToolGateway(
        tenant_id="t1",
        call_id="call-9",
        agent_id="clinic",
        allowed=tools,
        audit=audits.append,
        registry=registry,
    )


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKING_TOKEN", TOKEN)
    monkeypatch.setenv("BOOKING_SECRET", SECRET)


def load(directory: Path, policy: WebhookPolicy = LOCAL) -> ToolRegistry:
    registry = ToolRegistry()
    load_webhook_tools(directory, registry, policy=policy)
    return registry


# --- the request ----------------------------------------------------------------------------


async def test_post_fills_url_headers_body_and_signature(server: Server, tmp_path: Path) -> None:
    registry = load(tools_dir(tmp_path, book=book_file(server.url(""))))
    audits: list[ToolAudit] = []
    args = {"clinic": "north/1", "date": "2026-03-04 09:00", "name": "Ann Lee"}
    before = int(time.time())
    result = await gateway(registry, audits, "book_visit").call(
        "book_visit", json.dumps(args), turn=3
    )

    assert result.status is ToolStatus.OK, result
    assert result.content == "Booked, reference 1."
    [req] = server.requests
    assert req.method == "POST"
    assert req.target == "/v1/clinics/north%2F1/book?date=2026-03-04%2009%3A00"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["x-source"] == "callwright"
    assert req.headers["content-type"] == "application/json"
    assert json.loads(req.body) == {
        "arguments": args,
        "call": {"tenant_id": "t1", "call_id": "call-9", "agent_id": "clinic", "turn": 3},
    }
    # the receiver's check, computed here independently of the code under test
    timestamp = req.headers["x-callwright-timestamp"]
    assert before <= int(timestamp) <= int(time.time())
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + req.body, hashlib.sha256)
    assert req.headers["x-callwright-signature"] == f"sha256={expected.hexdigest()}"
    assert req.headers["idempotency-key"] == idempotency_key(
        ToolCallContext("t1", "call-9", "clinic", 3), "book_visit", args
    )
    [audit] = audits
    assert audit.data == {"say": "Booked, reference 1.", "id": 1}
    assert audit.arguments["name"] == "[redacted]"


async def test_retry_after_503_keeps_the_key_and_books_once(server: Server, tmp_path: Path) -> None:
    registry = load(tools_dir(tmp_path, book=book_file(server.url("/flaky"))))
    audits: list[ToolAudit] = []
    args = json.dumps({"clinic": "c1", "date": "2026-03-04"})
    result = await gateway(registry, audits, "book_visit").call("book_visit", args, turn=1)

    assert result.status is ToolStatus.OK, result
    assert len(server.requests) == 2
    first, second = server.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.body == second.body
    assert len(server.bookings) == 1  # the retry found its booking, not a second one
    assert result.content == "Booked, reference 1."


def test_idempotency_key_is_stable_and_specific() -> None:
    call = ToolCallContext("t1", "call-9", "clinic", 2)
    key = idempotency_key(call, "book", {"a": 1, "b": [1, 2]})
    assert key == idempotency_key(call, "book", {"b": [1, 2], "a": 1})  # key order
    assert key != idempotency_key(ToolCallContext("t1", "call-9", "clinic", 3), "book", {"a": 1})
    assert key != idempotency_key(call, "book", {"a": 2, "b": [1, 2]})
    assert key != idempotency_key(call, "cancel", {"a": 1, "b": [1, 2]})


async def test_get_sends_no_body_and_reads_text(server: Server, tmp_path: Path) -> None:
    text = book_file(server.url("/text"), **{"method: POST": "method: GET"})
    text = text.replace("/v1/clinics/{clinic}/book", "")
    registry = load(tools_dir(tmp_path, book=text), WebhookPolicy(allow_private=True))
    args = json.dumps({"clinic": "c1", "date": "../.."})
    result = await gateway(registry, [], "book_visit").call("book_visit", args, turn=1)
    assert result.status is ToolStatus.OK, result
    [req] = server.requests
    assert req.method == "GET" and req.body == b""
    assert req.target == "/text?date=..%2F.."
    assert result.content.startswith("plain words") and len(result.content) == 1000


def test_fill_url_keeps_the_path_shape() -> None:
    assert fill_url("http://h/a/{x}/b", {"x": ".."}) == "http://h/a/%2E%2E/b"
    assert fill_url("http://h/a/{x}", {"x": "1/../../admin"}) == "http://h/a/1%2F..%2F..%2Fadmin"
    assert fill_url("http://h/?n={n}&ok={ok}", {"n": 3, "ok": True}) == "http://h/?n=3&ok=true"


# --- failures -------------------------------------------------------------------------------


async def test_400_fails_at_once(server: Server, tmp_path: Path) -> None:
    registry = load(tools_dir(tmp_path, book=book_file(server.url("/bad"))))
    audits: list[ToolAudit] = []
    args = json.dumps({"clinic": "c1", "date": "d"})
    result = await gateway(registry, audits, "book_visit").call("book_visit", args, turn=1)
    assert result.status is ToolStatus.FAILED
    assert len(server.requests) == 1
    assert audits[0].error_type == "WebhookHTTPError"
    assert "no such clinic" not in result.content


async def test_slow_receiver_is_the_gateways_timeout(server: Server, tmp_path: Path) -> None:
    text = book_file(server.url("/slow"), **{"timeout_secs: 2": "timeout_secs: 0.3"})
    registry = load(tools_dir(tmp_path, book=text))
    args = json.dumps({"clinic": "c1", "date": "d"})
    started = time.monotonic()
    result = await gateway(registry, [], "book_visit").call("book_visit", args, turn=1)
    assert result.status is ToolStatus.TIMED_OUT
    assert time.monotonic() - started < 2
    assert len(server.requests) == 1  # a read timeout is not retried


async def test_response_over_the_cap_fails(server: Server, tmp_path: Path) -> None:
    registry = load(tools_dir(tmp_path, book=book_file(server.url("/big"))))
    audits: list[ToolAudit] = []
    args = json.dumps({"clinic": "c1", "date": "d"})
    result = await gateway(registry, audits, "book_visit").call("book_visit", args, turn=1)
    assert result.status is ToolStatus.FAILED
    assert audits[0].error_type == "WebhookResponseTooLarge"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_refused_by_default(server: Server, tmp_path: Path, host: str) -> None:
    url = server.url("").replace("127.0.0.1", host)
    registry = load(tools_dir(tmp_path, book=book_file(url)), WebhookPolicy())
    audits: list[ToolAudit] = []
    args = json.dumps({"clinic": "c1", "date": "d"})
    result = await gateway(registry, audits, "book_visit").call("book_visit", args, turn=1)
    assert result.status is ToolStatus.FAILED
    assert audits[0].error_type == "AddressRefused"
    assert "127.0.0.1" not in result.content and host not in result.content
    assert server.requests == []  # refused before any connection


async def test_private_hosts_allow_only_the_named_host(server: Server, tmp_path: Path) -> None:
    url = server.url("").replace("127.0.0.1", "localhost")
    registry = load(tools_dir(tmp_path, book=book_file(url)), LOCAL)  # allows 127.0.0.1 only
    audits: list[ToolAudit] = []
    args = json.dumps({"clinic": "c1", "date": "d"})
    result = await gateway(registry, audits, "book_visit").call("book_visit", args, turn=1)
    assert audits[0].error_type == "AddressRefused", result


# --- loading --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("method: POST", "methd: POST", r"methd: unknown field"),
        ("method: POST", "method: FETCH", r"method: Input should be 'GET'"),
        ("URL/v1", "http://{clinic}.example/v1", r"url: .*fixed host"),
        ("?date={date}", "?who={name}", r"url: .*\{name\} must be a required parameter"),
        ("X-Source: callwright", "Idempotency-Key: x", r"headers: .*Idempotency-Key"),
        ("timeout_secs: 2", "timeout_secs: 0", r"timeout_secs: Input should be greater"),
    ],
)
def test_bad_file_refused_naming_the_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = BOOK.replace(old, new).replace("URL", "http://api.example")
    with pytest.raises(WebhookConfigError, match=message) as info:
        load(tools_dir(tmp_path, book=text))
    assert "book.yaml" in str(info.value)


def test_missing_env_var_refused_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOKING_TOKEN")
    with pytest.raises(WebhookConfigError, match=r"headers.Authorization.*BOOKING_TOKEN"):
        load(tools_dir(tmp_path, book=book_file("http://api.example")))
    monkeypatch.setenv("BOOKING_TOKEN", TOKEN)
    monkeypatch.delenv("BOOKING_SECRET")
    with pytest.raises(WebhookConfigError, match=r"sign_secret_env.*BOOKING_SECRET") as info:
        load(tools_dir(tmp_path, book=book_file("http://api.example")))
    assert TOKEN not in str(info.value)


def test_loading_twice_is_a_no_op_but_a_taken_name_is_refused(tmp_path: Path) -> None:
    directory = tools_dir(tmp_path, book=book_file("http://api.example"))
    registry = ToolRegistry()
    assert load_webhook_tools(directory, registry, policy=LOCAL) == ["book_visit"]
    assert load_webhook_tools(directory, registry, policy=LOCAL) == ["book_visit"]
    other = tools_dir(tmp_path / "other", book=book_file("http://elsewhere.example"))
    with pytest.raises(WebhookConfigError, match="already registered"):
        load_webhook_tools(other, registry, policy=LOCAL)
    assert load_webhook_tools(tmp_path / "missing", registry, policy=LOCAL) == []


def test_secrets_stay_out_of_the_repr(tmp_path: Path) -> None:
    registry = load(tools_dir(tmp_path, book=book_file("http://api.example")))
    shown = repr(registry.get("book_visit"))
    assert TOKEN not in shown and SECRET not in shown
