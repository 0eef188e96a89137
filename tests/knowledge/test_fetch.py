"""SSRF-safe URL fetching: address checks, DNS rebinding, redirects, limits.

Real fetches go to a tiny HTTP/1.1 server on 127.0.0.1 (the only network there is);
redirect and header cases also use httpx.MockTransport. Nothing reaches the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpcore
import httpx
import pytest

from callwright.knowledge import fetch
from callwright.knowledge.fetch import (
    BlockedAddress,
    FetchError,
    FetchPolicy,
    GuardedNetworkBackend,
    fetch_url,
    is_public_address,
)

LOCAL = FetchPolicy(allow_private=True)
PDF = b"%PDF-1.4 pretend this is a PDF\n"


# --- a tiny HTTP/1.1 server -------------------------------------------------------------


@dataclass(slots=True)
class Server:
    port: int
    paths: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _head(status: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _respond(server: Server, path: str, writer: asyncio.StreamWriter) -> None:
    if path == "/doc":
        writer.write(
            _head(
                "200 OK",
                [
                    ("Content-Type", "application/pdf"),
                    ("Content-Disposition", 'attachment; filename="report.pdf"'),
                    ("Content-Length", str(len(PDF))),
                ],
            )
            + PDF
        )
    elif path == "/files/notes.txt":
        body = b"plain notes"
        writer.write(
            _head(
                "200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "11")]
            )
            + body
        )
    elif path.startswith("/to?"):
        writer.write(_head("302 Found", [("Location", path[4:]), ("Content-Length", "0")]))
    elif path == "/to-doc":
        writer.write(_head("301 Moved", [("Location", "/doc"), ("Content-Length", "0")]))
    elif path == "/declared-huge":
        # Claims 10 MB, sends a little, then stalls: reading it would hang.
        writer.write(_head("200 OK", [("Content-Length", str(10_000_000))]) + b"x" * 10)
        await writer.drain()
        await asyncio.sleep(30)
    elif path == "/stream-huge":
        writer.write(_head("200 OK", [("Transfer-Encoding", "chunked")]))
        chunk = b"y" * 65536
        for _ in range(200):  # 13 MB if nobody stops reading
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    elif path == "/slow":
        await asyncio.sleep(30)
    else:
        writer.write(_head("404 Not Found", [("Content-Length", "0")]))
    await writer.drain()


@contextlib.asynccontextmanager
async def _serve(tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    state = Server(port=0)
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
            state.paths.append(path)
            await _respond(state, path, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            handlers.discard(task)

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    state.port = srv.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        srv.close()
        for task in list(handlers):  # those stalled on purpose (/slow, /declared-huge)
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await srv.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with _serve() as state:
        yield state


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- is_public_address -------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "169.254.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",  # CGNAT
        "100.127.255.255",
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "192.0.0.8",
        "198.18.0.1",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::808:808",  # local-use NAT64
        "2001:db8::1",  # documentation
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "100::1",  # discard
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "2002:808:808::1",  # 6to4 of a public address
        "64:ff9b::808:808",  # NAT64 of a public address (IPv6-only hosts with DNS64)
    ],
)
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# --- the real local server ----------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "0x7f.0.0.1", "127.1"])
async def test_default_policy_refuses_loopback(server: Server, host: str) -> None:
    with pytest.raises(BlockedAddress) as info:
        await fetch_url(server.url("/doc", host))
    message = str(info.value)
    assert server.url("/doc", host) in message
    assert "127.0.0.1" in message
    assert "allow_private=True" in message
    assert info.value.address == "127.0.0.1"
    assert server.paths == []  # never connected


async def test_ipv4_mapped_ipv6_literal_refused() -> None:
    with pytest.raises(BlockedAddress, match="IPv4-mapped loopback"):
        await fetch_url("http://[::ffff:127.0.0.1]:1/doc")


async def test_octal_spelling_is_refused() -> None:
    # httpx refuses to parse it; either way it must not be fetched.
    with pytest.raises(FetchError):
        await fetch_url("http://0177.0.0.1/doc")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "0x7f.0.0.1"])
async def test_allow_private_fetches(server: Server, host: str) -> None:
    doc = await fetch_url(server.url("/doc", host), LOCAL)
    assert doc.data == PDF
    assert doc.content_type == "application/pdf"
    assert doc.filename == "report.pdf"
    assert doc.url == server.url("/doc", host)


async def test_filename_from_url_and_charset_kept(server: Server) -> None:
    doc = await fetch_url(server.url("/files/notes.txt"), LOCAL)
    assert doc.data == b"plain notes"
    assert doc.filename == "notes.txt"
    assert doc.content_type == "text/plain; charset=utf-8"


async def test_relative_redirect_followed(server: Server) -> None:
    doc = await fetch_url(server.url("/to-doc"), LOCAL)
    assert doc.data == PDF
    assert doc.url == server.url("/doc")
    assert server.paths == ["/to-doc", "/doc"]


async def test_redirect_to_other_scheme_refused(server: Server) -> None:
    with pytest.raises(FetchError, match="scheme 'file' is not allowed"):
        await fetch_url(server.url("/to?file:///etc/passwd"), LOCAL)


async def test_redirect_to_metadata_refused_by_allowed_hosts(server: Server) -> None:
    policy = FetchPolicy(allow_private=True, allowed_hosts=frozenset({"127.0.0.1"}))
    assert (await fetch_url(server.url("/doc"), policy)).data == PDF
    url = server.url("/to?http://169.254.169.254/latest/meta-data/")
    with pytest.raises(FetchError, match=r"host '169\.254\.169\.254' is not in the allowed hosts"):
        await fetch_url(url, policy)
    with pytest.raises(FetchError, match="not in the allowed hosts"):
        await fetch_url(server.url(f"/to?http://localhost:{server.port}/doc"), policy)


class _PretendPublic(httpcore.AsyncNetworkBackend):
    """Connects the made-up public address PUBLIC to the local test server."""

    PUBLIC = "93.184.216.34"

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        if host != self.PUBLIC:
            raise httpcore.ConnectError(f"no network to {host}")
        return await self._real.connect_tcp("127.0.0.1", port, timeout)


async def test_redirect_to_private_hostname_refused(server: Server) -> None:
    """Default policy: the public first hop is fetched, its redirect to a name that
    resolves to a private address is refused before any connection to it."""

    async def resolver(host: str, port: int) -> list[str]:
        return {"docs.example": [_PretendPublic.PUBLIC], "intranet.example": ["10.1.2.3"]}[host]

    policy = FetchPolicy()
    inner = _PretendPublic()
    transport = fetch.guarded_transport(policy, resolver=resolver, inner=inner)
    doc = await fetch_url(f"http://docs.example:{server.port}/to-doc", policy, transport=transport)
    assert doc.data == PDF  # the guarded path works end to end for a public address
    assert doc.url == f"http://docs.example:{server.port}/doc"

    transport = fetch.guarded_transport(policy, resolver=resolver, inner=inner)
    target = f"http://intranet.example:{server.port}/doc"
    with pytest.raises(BlockedAddress, match=r"intranet\.example resolves to 10\.1\.2\.3") as info:
        await fetch_url(
            f"http://docs.example:{server.port}/to?{target}", policy, transport=transport
        )
    assert f"redirected to {target}" in str(info.value)
    assert server.paths == ["/to-doc", "/doc", f"/to?{target}"]
    assert set(inner.hosts) == {_PretendPublic.PUBLIC}


async def test_hostname_resolving_private_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["10.0.0.7"]

    monkeypatch.setattr(fetch, "resolve_host", resolver)
    with pytest.raises(BlockedAddress) as info:
        await fetch_url("https://intranet.example/handbook.pdf")
    assert calls == [("intranet.example", 443)]
    assert "intranet.example resolves to 10.0.0.7, a private address" in str(info.value)
    assert "https://intranet.example/handbook.pdf" in str(info.value)


async def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "169.254.169.254"]

    monkeypatch.setattr(fetch, "resolve_host", resolver)
    with pytest.raises(BlockedAddress, match=r"169\.254\.169\.254, a link-local address"):
        await fetch_url("http://mixed.example/")


async def test_connects_to_the_checked_address(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the host name is resolved once, and the socket targets that IP."""
    answers = [["127.0.0.1"]]

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "rebind.example"
        return answers.pop()  # a second lookup would fail the test

    monkeypatch.setattr(fetch, "resolve_host", resolver)
    doc = await fetch_url(f"http://rebind.example:{server.port}/doc", LOCAL)
    assert doc.data == PDF
    assert answers == []


class _SpyBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("spy: no network here")


async def test_backend_connects_to_literal_not_to_name() -> None:
    answers = [["127.0.0.1"], ["93.184.216.34", "2606:4700:4700::1111"]]  # then rebinds

    async def resolver(host: str, port: int) -> list[str]:
        return answers.pop()

    spy = _SpyBackend()
    backend = GuardedNetworkBackend(resolver=resolver, inner=spy)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.example", 443, timeout=1)
    # Both checked public addresses were tried, by literal; the name never reached it.
    assert spy.hosts == ["93.184.216.34", "2606:4700:4700::1111"]
    assert answers == [["127.0.0.1"]]


async def test_backend_refuses_unix_sockets() -> None:
    with pytest.raises(httpcore.ConnectError):
        await GuardedNetworkBackend().connect_unix_socket("/var/run/docker.sock")


async def test_unresolvable_host_is_fetch_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(fetch, "resolve_host", resolver)
    with pytest.raises(FetchError, match=r"cannot resolve nowhere\.example") as info:
        await fetch_url("http://nowhere.example/")
    assert not isinstance(info.value, BlockedAddress)


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize(("cert_name", "ok"), [("docs.example", True), ("other.example", False)])
async def test_tls_verifies_the_host_name_not_the_ip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cert_name: str, ok: bool
) -> None:
    """The socket goes to the checked IP, yet SNI and the certificate check use the name."""
    cert, key = _self_signed(tmp_path, cert_name)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    sni: list[str | None] = []

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name)

    tls.sni_callback = record_sni
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate only

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(fetch, "resolve_host", resolver)
    async with _serve(tls) as srv:
        url = f"https://docs.example:{srv.port}/doc"
        if ok:
            doc = await fetch_url(url, LOCAL)
            assert doc.data == PDF
        else:
            with pytest.raises(FetchError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
                await fetch_url(url, LOCAL)
    assert sni and sni[0] == "docs.example"


async def test_declared_oversize_refused_before_reading(server: Server) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="Content-Length 10000000 exceeds the limit of 1000"):
        await fetch_url(
            server.url("/declared-huge"), FetchPolicy(allow_private=True, max_bytes=1000)
        )
    assert time.monotonic() - started < 5  # did not wait for the stalled body


async def test_streamed_oversize_aborted(server: Server) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=100_000)
    with pytest.raises(FetchError, match="body exceeds the limit of 100000 bytes"):
        await fetch_url(server.url("/stream-huge"), policy)


async def test_timeout(server: Server) -> None:
    policy = FetchPolicy(allow_private=True, timeout_secs=0.3)
    with pytest.raises(FetchError, match=r"timed out after 0\.3 s"):
        await fetch_url(server.url("/slow"), policy)


async def test_http_error_status(server: Server) -> None:
    with pytest.raises(FetchError, match="HTTP 404 Not Found") as info:
        await fetch_url(server.url("/missing"), LOCAL)
    assert server.url("/missing") in str(info.value)


async def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/doc"
    with pytest.raises(FetchError, match="ConnectError") as info:
        await fetch_url(url, LOCAL)
    assert url in str(info.value)
    assert not isinstance(info.value, BlockedAddress)


async def test_environment_proxies_ignored(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert (await fetch_url(server.url("/doc"), LOCAL)).data == PDF


# --- URL checks and redirects with a mock transport -------------------------------------


def _mock(routes: dict[str, httpx.Response]) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return routes.get(str(request.url), httpx.Response(404))

    return httpx.MockTransport(handler), seen


def _redirect(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("ftp://files.example/a.pdf", "scheme 'ftp' is not allowed"),
        ("gopher://files.example/", "scheme 'gopher' is not allowed"),
        ("docs.example/a.pdf", "has no scheme"),
        ("http://user:secret@docs.example/a.pdf", "credentials"),
        ("http://user@docs.example/a.pdf", "credentials"),
        ("http:///a.pdf", "no host"),
        ("http://[::1/", "invalid URL"),
    ],
)
async def test_bad_urls_refused(url: str, reason: str) -> None:
    transport, seen = _mock({})
    with pytest.raises(FetchError, match=re.escape(reason)) as info:
        await fetch_url(url, transport=transport)
    assert url in str(info.value)
    assert seen == []


async def test_allowed_schemes_narrowed() -> None:
    transport, _ = _mock({"http://docs.example/": httpx.Response(200, content=b"x")})
    with pytest.raises(FetchError, match="scheme 'http' is not allowed"):
        await fetch_url(
            "http://docs.example/",
            FetchPolicy(allowed_schemes=frozenset({"https"})),
            transport=transport,
        )


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/",
        "http://[fd00::1]/",
        "http://0.0.0.0:8080/",
    ],
)
async def test_redirect_to_private_literal_refused(target: str) -> None:
    transport, seen = _mock({"https://docs.example/a": _redirect(target)})
    with pytest.raises(BlockedAddress) as info:
        await fetch_url("https://docs.example/a", transport=transport)
    assert "redirected to" in str(info.value)
    assert seen == ["https://docs.example/a"]


async def test_redirect_chain_and_relative_locations() -> None:
    transport, seen = _mock(
        {
            "https://docs.example/a/b": _redirect("../c", 301),
            "https://docs.example/c": _redirect("//cdn.example/files/x.pdf?v=2", 303),
            "https://cdn.example/files/x.pdf?v=2": _redirect("/final/Guide%20v2.pdf", 307),
            "https://cdn.example/final/Guide%20v2.pdf": httpx.Response(
                200, content=b"doc", headers={"Content-Type": "application/pdf"}
            ),
        }
    )
    doc = await fetch_url(
        "https://docs.example/a/b", FetchPolicy(max_redirects=3), transport=transport
    )
    assert doc.url == "https://cdn.example/final/Guide%20v2.pdf"
    assert doc.filename == "Guide v2.pdf"
    assert doc.data == b"doc"
    assert len(seen) == 4


async def test_too_many_redirects() -> None:
    transport, seen = _mock(
        {f"https://docs.example/{i}": _redirect(f"/{i + 1}") for i in range(10)}
    )
    with pytest.raises(FetchError, match="more than 2 redirects"):
        await fetch_url("https://docs.example/0", FetchPolicy(max_redirects=2), transport=transport)
    assert len(seen) == 3
    with pytest.raises(FetchError, match="more than 0 redirects"):
        await fetch_url("https://docs.example/0", FetchPolicy(max_redirects=0), transport=transport)


async def test_redirect_without_location() -> None:
    transport, _ = _mock({"https://docs.example/": httpx.Response(302)})
    with pytest.raises(FetchError, match="302 redirect without Location"):
        await fetch_url("https://docs.example/", transport=transport)


async def test_redirect_adding_credentials_refused() -> None:
    transport, _ = _mock({"https://docs.example/": _redirect("https://a:b@docs.example/x")})
    with pytest.raises(FetchError, match="credentials"):
        await fetch_url("https://docs.example/", transport=transport)


@pytest.mark.parametrize("status", [400, 403, 500, 503])
async def test_error_statuses(status: int) -> None:
    transport, _ = _mock({"https://docs.example/": httpx.Response(status)})
    with pytest.raises(FetchError, match=f"HTTP {status}"):
        await fetch_url("https://docs.example/", transport=transport)


async def test_mock_size_limits() -> None:
    big = httpx.Response(200, content=b"z" * 2048)
    transport, _ = _mock({"https://docs.example/big": big})
    with pytest.raises(FetchError, match="Content-Length 2048 exceeds"):
        await fetch_url(
            "https://docs.example/big", FetchPolicy(max_bytes=1024), transport=transport
        )

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"z" * 512

    streamed = httpx.Response(200, content=chunks())  # no Content-Length
    transport, _ = _mock({"https://docs.example/s": streamed})
    with pytest.raises(FetchError, match="body exceeds the limit of 1024 bytes"):
        await fetch_url("https://docs.example/s", FetchPolicy(max_bytes=1024), transport=transport)

    exact = httpx.Response(200, content=b"z" * 1024)
    transport, _ = _mock({"https://docs.example/e": exact})
    doc = await fetch_url(
        "https://docs.example/e", FetchPolicy(max_bytes=1024), transport=transport
    )
    assert len(doc.data) == 1024


@pytest.mark.parametrize(
    ("disposition", "path", "expected"),
    [
        ('attachment; filename="a b.pdf"', "/x", "a b.pdf"),
        ("attachment; filename*=UTF-8''%C3%BCbersicht%20Q1.docx", "/x", "übersicht Q1.docx"),
        ('inline; filename="../../etc/passwd"', "/x", "passwd"),
        ('attachment; filename="..\\\\evil.txt"', "/x", "evil.txt"),
        (None, "/docs/guide.md", "guide.md"),
        (None, "/docs/", None),
        (None, "/", None),
        ("inline", "/report.html", "report.html"),
    ],
)
async def test_filenames(disposition: str | None, path: str, expected: str | None) -> None:
    headers = {"Content-Disposition": disposition} if disposition else {}
    url = f"https://docs.example{path}"
    transport, _ = _mock({url: httpx.Response(200, content=b"x", headers=headers)})
    doc = await fetch_url(url, transport=transport)
    assert doc.filename == expected
    assert doc.content_type is None


async def test_request_headers() -> None:
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, content=b"ok")

    await fetch_url("https://docs.example/", transport=httpx.MockTransport(handler))
    assert captured[0].headers["accept-encoding"] == "identity"
    assert captured[0].headers["user-agent"].startswith("Callwright")
    assert "authorization" not in captured[0].headers


def test_policy_is_frozen() -> None:
    policy = FetchPolicy()
    with pytest.raises(AttributeError):
        policy.allow_private = True  # type: ignore[misc]
    assert policy.max_bytes == 20 * 1024 * 1024
    assert policy.allowed_schemes == frozenset({"http", "https"})
    assert issubclass(BlockedAddress, FetchError)
    assert issubclass(FetchError, ValueError)
