"""Outbound HTTP that cannot be turned against the operator's own network.

Knowledge ingestion fetches URLs a tenant names, and webhook tools call URLs an
installation declares with arguments an LLM chose: both must never reach loopback,
private or link-local addresses (databases, admin panels, cloud metadata at
169.254.169.254) unless the operator allows it. The rules and the pinned connection
layer were moved here from `knowledge/fetch.py` so that `knowledge` and `actions`,
sibling layers that may not import each other, share one implementation.

`addresses`: which IP addresses are public. `transport`: an httpx transport that
resolves, checks every address, and connects to the very address it checked (DNS
rebinding gets nowhere); proxies are never used. Redirects, body limits and error
wording stay with each caller.
"""

from callwright.netguard.addresses import (
    IPAddress,
    describe_address,
    is_public_address,
    parse_ip,
)
from callwright.netguard.transport import (
    AddressRefused,
    GuardedNetworkBackend,
    Resolver,
    guarded_transport,
    resolve_host,
)

__all__ = [
    "AddressRefused",
    "GuardedNetworkBackend",
    "IPAddress",
    "Resolver",
    "describe_address",
    "guarded_transport",
    "is_public_address",
    "parse_ip",
    "resolve_host",
]
