"""SSRF-safe URL fetching for knowledge ingestion.

A document URL comes from a tenant, so fetching it must not become a way to reach the
operator's internal network (databases, admin panels, cloud metadata at
169.254.169.254). Addresses are checked after DNS resolution, inside the connection
layer, and the connection goes to the very address that was checked: a host name that
resolves to a public address for the check and a private one for the connection (DNS
rebinding) gets nowhere. Redirects are followed by hand so every hop is checked again;
environment proxies are ignored since a proxy would make the connection for us,
unchecked. Bodies are size-limited while they stream.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> IP address strings`; injectable so tests need no real DNS."""

USER_AGENT = "Callwright-knowledge-fetch/0.1"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SUPPORTED_SCHEMES = frozenset({"http", "https"})  # all httpx can speak

# Ranges `ipaddress` does not flag (or flags only in some Python versions) that are
# nonetheless not somewhere a tenant's document lives.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches localhost on Linux
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, incl. broadcast
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, incl. Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "fec0::/10",  # deprecated site-local
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(slots=True, frozen=True)
class FetchPolicy:
    """What a fetch may reach; the defaults are safe for tenant-supplied URLs."""

    allow_private: bool = False  # operator opt-in: loopback/private/link-local allowed
    allowed_hosts: frozenset[str] = frozenset()  # exact host names; empty = any public host
    max_bytes: int = 20 * 1024 * 1024
    timeout_secs: float = 20.0  # whole fetch, redirects included
    max_redirects: int = 5
    allowed_schemes: frozenset[str] = frozenset({"http", "https"})


@dataclass(slots=True)
class FetchedDocument:
    """A fetched body with what the parser needs to pick a format."""

    url: str  # final URL after redirects
    content_type: str | None
    data: bytes
    filename: str | None  # from Content-Disposition or the URL path's last segment


class FetchError(ValueError):
    """A URL could not be fetched; the message names the URL and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot fetch {url}: {reason}")
        self.url = url
        self.reason = reason


class BlockedAddress(FetchError):
    """Refused to connect to a non-public address (server-side request forgery guard)."""

    def __init__(self, url: str, address: str, host: str | None = None) -> None:
        ip = _parse_ip(address)
        kind = _describe(ip) if ip is not None else "unparseable"
        via = f"{host} resolves to " if host and host != address else ""
        super().__init__(
            url,
            f"{via}{address}, a {kind} address; refused to protect the internal network "
            "(an operator can set allow_private=True in the fetch policy to allow "
            "loopback, private and link-local addresses)",
        )
        self.address = address
        self.host = host


class _AddressRefused(Exception):
    """Raised inside the connection layer, turned into BlockedAddress by fetch_url."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} -> {address} refused")
        self.host = host
        self.address = address


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses a public document can live on."""
    if isinstance(ip, ipaddress.IPv6Address):
        # Forms that embed an IPv4 address are judged by that address.
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return is_public_address(ip.sixtofour)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.is_site_local or any(ip in net for net in _BLOCKED_V6):
            return False
    elif any(ip in net for net in _BLOCKED_V4):
        return False
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    ):
        return False
    return ip.is_global


def _describe(ip: IPAddress) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"IPv4-mapped {_describe(ip.ipv4_mapped)}"
    for flag, name in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, flag):
            return name
    if ip in ipaddress.IPv4Network("100.64.0.0/10"):
        return "carrier-grade NAT"
    return "non-public"


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(unquote(text))
    except ValueError:
        return None


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in resolver order, without duplicates."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked IP literal.

    httpcore still takes the TLS server name (SNI, certificate check) from the request's
    origin, so HTTPS verifies the real host name although the socket targets an IP.
    `resolver=None` looks up the module's `resolve_host` at call time (monkeypatchable).
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._checked_addresses(host, port, timeout)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # _checked_addresses never returns an empty list
        raise last

    async def _checked_addresses(self, host: str, port: int, limit: float | None) -> list[str]:
        resolver = self._resolver or resolve_host
        try:
            async with asyncio.timeout(limit):
                addresses = await resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            ip = _parse_ip(address)
            # Every address is checked, not just the first: the connection may fall
            # through to any of them.
            if ip is None or not (self._allow_private or is_public_address(ip)):
                raise _AddressRefused(host, address)
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed for URL fetching")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    policy: FetchPolicy,
    *,
    resolver: Resolver | None = None,
    inner: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every TCP connection goes through GuardedNetworkBackend."""
    transport = httpx.AsyncHTTPTransport(trust_env=False, retries=0)
    pool = httpcore.AsyncConnectionPool(
        # Same context httpx builds by default (certifi; SSL_CERT_FILE honoured).
        ssl_context=httpx.create_ssl_context(),
        max_connections=10,
        http1=True,
        http2=False,
        retries=0,
        network_backend=GuardedNetworkBackend(
            allow_private=policy.allow_private, resolver=resolver, inner=inner
        ),
    )
    _replace_pool(transport, pool)
    return transport


def _replace_pool(transport: httpx.AsyncHTTPTransport, pool: httpcore.AsyncConnectionPool) -> None:
    # httpx (0.27, 0.28) offers no public way to choose the httpcore network backend;
    # AsyncHTTPTransport keeps its pool in `_pool` and sends every request through it.
    # The pool httpx built is discarded unused (it opens nothing until a request).
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("unsupported httpx version: AsyncHTTPTransport has no _pool")
    transport._pool = pool


def _check_url(url: httpx.URL, policy: FetchPolicy, shown: str) -> None:
    """Checks that need no network: scheme, credentials, host, allow-list, IP literals."""
    scheme = url.scheme
    if not scheme:
        raise FetchError(shown, "the URL has no scheme (expected http:// or https://)")
    if scheme not in policy.allowed_schemes or scheme not in _SUPPORTED_SCHEMES:
        raise FetchError(shown, f"scheme {scheme!r} is not allowed")
    if url.userinfo:
        raise FetchError(shown, "URLs with credentials (user:password@) are not allowed")
    host = url.host.rstrip(".").lower()
    if not host:
        raise FetchError(shown, "the URL has no host")
    if policy.allowed_hosts and host not in {h.rstrip(".").lower() for h in policy.allowed_hosts}:
        raise FetchError(shown, f"host {host!r} is not in the allowed hosts")
    # Literal addresses are refused up front (the connection layer would too); this also
    # guards transports injected without the connection-layer check.
    ip = _parse_ip(host)
    if ip is not None and not policy.allow_private and not is_public_address(ip):
        raise BlockedAddress(shown, str(ip))


def _filename(response: httpx.Response) -> str | None:
    disposition = response.headers.get("content-disposition")
    name: str | None = None
    if disposition:
        msg = Message()
        msg["content-disposition"] = disposition
        name = msg.get_filename()  # handles filename*=UTF-8''... (RFC 2231/5987)
    if not name:
        name = unquote(response.url.path.rsplit("/", 1)[-1])
    # Never let a server choose a path: keep the last segment only.
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name and name not in {".", ".."} else None


async def _read_body(response: httpx.Response, policy: FetchPolicy, shown: str) -> bytes:
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchError(
            shown, f"Content-Length {declared} exceeds the limit of {policy.max_bytes} bytes"
        )
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > policy.max_bytes:
            raise FetchError(shown, f"body exceeds the limit of {policy.max_bytes} bytes")
    return bytes(body)


async def fetch_url(
    url: str,
    policy: FetchPolicy = FetchPolicy(),
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FetchedDocument:
    """GET `url` within `policy`; every failure is a FetchError (BlockedAddress for SSRF).

    `transport` replaces the guarded connection layer (tests use httpx.MockTransport);
    the URL checks still apply to every hop, but resolved-address checks do not.
    """
    shown = url
    try:
        async with asyncio.timeout(policy.timeout_secs):
            return await _fetch(url, policy, transport)
    except FetchError:
        raise
    except TimeoutError:
        raise FetchError(shown, f"timed out after {policy.timeout_secs:g} s") from None
    except httpx.TimeoutException:
        raise FetchError(shown, f"timed out after {policy.timeout_secs:g} s") from None


async def _fetch(
    url: str, policy: FetchPolicy, transport: httpx.AsyncBaseTransport | None
) -> FetchedDocument:
    try:
        current = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(url, f"invalid URL ({exc})") from None
    async with httpx.AsyncClient(
        transport=transport or guarded_transport(policy),
        trust_env=False,  # no env proxies (they would connect unchecked), no .netrc
        follow_redirects=False,
        timeout=httpx.Timeout(policy.timeout_secs),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    ) as client:
        for _hop in range(policy.max_redirects + 1):
            shown = url if str(current) == url else f"{url} (redirected to {current})"
            _check_url(current, policy, shown)
            try:
                async with client.stream("GET", current) as response:
                    if response.status_code in _REDIRECT_STATUSES:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(
                                shown, f"HTTP {response.status_code} redirect without Location"
                            )
                        try:
                            current = current.join(location)
                        except httpx.InvalidURL as exc:
                            raise FetchError(shown, f"bad redirect Location ({exc})") from None
                        continue
                    if response.status_code >= 300:
                        raise FetchError(
                            shown, f"HTTP {response.status_code} {response.reason_phrase}".strip()
                        )
                    data = await _read_body(response, policy, shown)
                    return FetchedDocument(
                        url=str(current),
                        content_type=response.headers.get("content-type"),
                        data=data,
                        filename=_filename(response),
                    )
            except _AddressRefused as exc:
                raise BlockedAddress(shown, exc.address, exc.host) from None
            except httpx.TimeoutException:
                raise
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                detail = str(exc) or "request failed"
                raise FetchError(shown, f"{type(exc).__name__}: {detail}") from None
        raise FetchError(url, f"more than {policy.max_redirects} redirects")
