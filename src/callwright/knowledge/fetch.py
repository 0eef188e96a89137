"""SSRF-safe URL fetching for knowledge ingestion.

A document URL comes from a tenant, so fetching it must not become a way to reach the
operator's internal network (databases, admin panels, cloud metadata at
169.254.169.254). Addresses are checked after DNS resolution, inside the connection
layer, and the connection goes to the very address that was checked: a host name that
resolves to a public address for the check and a private one for the connection (DNS
rebinding) gets nowhere. Redirects are followed by hand so every hop is checked again;
environment proxies are ignored since a proxy would make the connection for us,
unchecked. Bodies are size-limited while they stream.

The address rules and the checked, pinned connection layer live in `callwright.netguard`
(shared with webhook tools); redirects, limits and error wording are this module's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote

import httpcore
import httpx

from callwright.netguard import (
    AddressRefused,
    GuardedNetworkBackend,
    Resolver,
    describe_address,
    is_public_address,
    parse_ip,
    resolve_host,
)
from callwright.netguard import guarded_transport as _netguard_transport

__all__ = [
    "BlockedAddress",
    "FetchError",
    "FetchPolicy",
    "FetchedDocument",
    "GuardedNetworkBackend",
    "fetch_url",
    "guarded_transport",
    "is_public_address",
    "resolve_host",
]

USER_AGENT = "Callwright-knowledge-fetch/0.1"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SUPPORTED_SCHEMES = frozenset({"http", "https"})  # all httpx can speak


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
        ip = parse_ip(address)
        kind = describe_address(ip) if ip is not None else "unparseable"
        via = f"{host} resolves to " if host and host != address else ""
        super().__init__(
            url,
            f"{via}{address}, a {kind} address; refused to protect the internal network "
            "(an operator can set allow_private=True in the fetch policy to allow "
            "loopback, private and link-local addresses)",
        )
        self.address = address
        self.host = host


async def _resolve(host: str, port: int) -> list[str]:
    # looked up in this module at call time: `fetch.resolve_host` stays patchable
    return await resolve_host(host, port)


def guarded_transport(
    policy: FetchPolicy,
    *,
    resolver: Resolver | None = None,
    inner: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every TCP connection is checked against `policy`
    (`netguard.guarded_transport`)."""
    return _netguard_transport(
        allow_private=policy.allow_private, resolver=resolver or _resolve, inner=inner
    )


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
    ip = parse_ip(host)
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
            except AddressRefused as exc:
                raise BlockedAddress(shown, exc.address, exc.host) from None
            except httpx.TimeoutException:
                raise
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                detail = str(exc) or "request failed"
                raise FetchError(shown, f"{type(exc).__name__}: {detail}") from None
        raise FetchError(url, f"more than {policy.max_redirects} redirects")
