"""Which IP addresses are public: the address half of the SSRF rules (see `netguard`)."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `ipaddress` does not flag (or flags only in some Python versions) that are
# nonetheless not somewhere a public service lives.
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
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses a public service can live on."""
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


def describe_address(ip: IPAddress) -> str:
    """What kind of non-public address this is, for an error message."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"IPv4-mapped {describe_address(ip.ipv4_mapped)}"
    kinds = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
    )
    for flagged, name in kinds:
        if flagged:
            return name
    if ip in _CGNAT:
        return "carrier-grade NAT"
    return "non-public"


def parse_ip(text: str) -> IPAddress | None:
    """An IP literal (percent-encoded zone ids allowed), or None for a host name."""
    try:
        return ipaddress.ip_address(unquote(text))
    except ValueError:
        return None
