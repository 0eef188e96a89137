"""The checked, pinned connection layer: the transport half of the SSRF rules.

Addresses are checked after DNS resolution, inside the connection layer, and the
connection goes to the very address that was checked: a host name that resolves to a
public address for the check and a private one for the connection (DNS rebinding)
gets nowhere. Environment proxies are ignored, since a proxy would make the
connection for us, unchecked.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from callwright.netguard.addresses import is_public_address, parse_ip

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> IP address strings`; injectable so tests need no real DNS."""


class AddressRefused(Exception):
    """Raised inside the connection layer: `host` resolved to a non-public `address`
    the policy does not allow. It passes through httpx unwrapped."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} -> {address} refused")
        self.host = host
        self.address = address


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


def _normal_host(host: str) -> str:
    return host.rstrip(".").lower()


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked IP literal.

    `allow_private` lets every host reach non-public addresses; `private_hosts` lets
    only the named hosts (exact names or IP literals) do so. httpcore still takes the
    TLS server name (SNI, certificate check) from the request's origin, so HTTPS
    verifies the real host name although the socket targets an IP. `resolver=None`
    looks up this module's `resolve_host` at call time (monkeypatchable).
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        private_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._private_hosts = frozenset(_normal_host(h) for h in private_hosts)
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
        private_ok = self._allow_private or _normal_host(host) in self._private_hosts
        for address in addresses:
            ip = parse_ip(address)
            # Every address is checked, not just the first: the connection may fall
            # through to any of them.
            if ip is None or not (private_ok or is_public_address(ip)):
                raise AddressRefused(host, address)
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed for outbound requests")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    *,
    allow_private: bool = False,
    private_hosts: Iterable[str] = (),
    resolver: Resolver | None = None,
    inner: httpcore.AsyncNetworkBackend | None = None,
    max_connections: int = 10,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every TCP connection goes through GuardedNetworkBackend.

    Pair it with `httpx.AsyncClient(trust_env=False)`, so no proxy is configured.
    """
    transport = httpx.AsyncHTTPTransport(trust_env=False, retries=0)
    pool = httpcore.AsyncConnectionPool(
        # Same context httpx builds by default (certifi; SSL_CERT_FILE honoured).
        ssl_context=httpx.create_ssl_context(),
        max_connections=max_connections,
        http1=True,
        http2=False,
        retries=0,
        network_backend=GuardedNetworkBackend(
            allow_private=allow_private,
            private_hosts=private_hosts,
            resolver=resolver,
            inner=inner,
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
