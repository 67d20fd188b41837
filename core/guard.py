"""Which IP addresses newsmon may connect to (the SSRF guard's decision).

Owns: ``forbidden_reason``, the pure decision "may we open a TCP connection to this address",
with a short human reason when not. Feeds and webhooks are URLs typed in by users, so a feed
(or a redirect it answers with) or a webhook must not make newsmon reach the loopback
interface, the LAN, a cloud metadata service (169.254.169.254) or any other address that is
not on the public internet.

Must not: resolve names, open sockets or read settings. ``core.http.GuardedBackend`` calls
this for every address a host name resolves to, at connect time; whether private networks are
allowed (``NEWSMON_ALLOW_PRIVATE_NETWORKS``) is the caller's business.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

# Most specific first: the first match names the reason. Sources: the IANA special-purpose
# address registries (RFC 6890) and the RFC cited on each line.
_V4_RANGES: Final[tuple[tuple[str, IPv4Network], ...]] = tuple(
    (reason, IPv4Network(net))
    for reason, net in (
        ("broadcast", "255.255.255.255/32"),  # RFC 919 limited broadcast
        ("unspecified", "0.0.0.0/8"),  # RFC 1122 §3.2.1.3 "this host on this network"
        ("loopback", "127.0.0.0/8"),  # RFC 1122
        ("private", "10.0.0.0/8"),  # RFC 1918
        ("private", "172.16.0.0/12"),  # RFC 1918
        ("private", "192.168.0.0/16"),  # RFC 1918
        ("carrier-grade NAT", "100.64.0.0/10"),  # RFC 6598 shared address space
        ("link-local", "169.254.0.0/16"),  # RFC 3927 (cloud metadata services live here)
        ("IETF protocol assignment", "192.0.0.0/24"),  # RFC 6890
        ("documentation", "192.0.2.0/24"),  # RFC 5737 TEST-NET-1
        ("documentation", "198.51.100.0/24"),  # RFC 5737 TEST-NET-2
        ("documentation", "203.0.113.0/24"),  # RFC 5737 TEST-NET-3
        ("6to4 relay anycast", "192.88.99.0/24"),  # RFC 7526 (deprecated)
        ("benchmarking", "198.18.0.0/15"),  # RFC 2544
        ("multicast", "224.0.0.0/4"),  # RFC 5771
        ("reserved", "240.0.0.0/4"),  # RFC 1112 class E
    )
)

_V6_RANGES: Final[tuple[tuple[str, IPv6Network], ...]] = tuple(
    (reason, IPv6Network(net))
    for reason, net in (
        ("unspecified", "::/128"),  # RFC 4291 §2.5.2
        ("loopback", "::1/128"),  # RFC 4291 §2.5.3
        ("IPv4-compatible (deprecated)", "::/96"),  # RFC 4291 §2.5.5.1
        ("discard-only", "100::/64"),  # RFC 6666
        ("local-use NAT64", "64:ff9b:1::/48"),  # RFC 8215: translates to private space
        ("Teredo", "2001::/32"),  # RFC 4380: tunnels to an IPv4 address we cannot vet
        ("documentation", "2001:db8::/32"),  # RFC 3849
        ("private (unique local)", "fc00::/7"),  # RFC 4193
        ("link-local", "fe80::/10"),  # RFC 4291 §2.5.6
        ("site-local (deprecated)", "fec0::/10"),  # RFC 3879
        ("multicast", "ff00::/8"),  # RFC 4291 §2.7
    )
)

_NAT64: Final = IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1 well-known prefix
_V4_TRANSLATED: Final = IPv6Network("::ffff:0:0:0/96")  # RFC 2765 §2.1


def forbidden_reason(ip: IPv4Address | IPv6Address) -> str | None:
    """Why newsmon must not connect to ``ip`` ("loopback address 127.0.0.1"), or None."""
    if isinstance(ip, IPv4Address):
        return _v4_reason(ip)
    embedded = _embedded_v4(ip)
    if embedded is not None:
        kind, v4 = embedded
        # The packet really goes to the embedded IPv4 address: judge that one alone.
        inner = _v4_reason(v4)
        return None if inner is None else f"{kind} address {ip} embeds {inner}"
    for reason, net in _V6_RANGES:
        if ip in net:
            return f"{reason} address {ip}"
    if not ip.is_global:
        return f"reserved address {ip}"
    return None


def _v4_reason(ip: IPv4Address) -> str | None:
    for reason, net in _V4_RANGES:
        if ip in net:
            return f"{reason} address {ip}"
    if not ip.is_global:  # anything the IANA registry adds that the table above lacks
        return f"reserved address {ip}"
    return None


def _embedded_v4(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the embedding forms."""
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d, RFC 4291 §2.5.5.2
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64:  # 64:ff9b::a.b.c.d, the last 32 bits (RFC 6052 §2.2)
        return "NAT64", IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip in _V4_TRANSLATED:
        return "IPv4-translated", IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48, RFC 3056 §2
        return "6to4", ip.sixtofour
    return None
