"""core.guard: which addresses a fetch may connect to (table-driven)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from core.guard import forbidden_reason

FORBIDDEN = [
    # address, a word the reason must contain
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("169.254.169.254", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.0.8", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("64:ff9b:1::a00:1", "NAT64"),
    # IPv6 forms that carry a forbidden IPv4 address
    ("::ffff:127.0.0.1", "IPv4-mapped address ::ffff:7f00:1 embeds loopback address 127.0.0.1"),
    ("::ffff:10.1.2.3", "embeds private address 10.1.2.3"),
    ("::ffff:169.254.169.254", "embeds link-local"),
    ("::ffff:0.0.0.0", "embeds unspecified"),
    ("64:ff9b::127.0.0.1", "NAT64 address 64:ff9b::7f00:1 embeds loopback address 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "embeds link-local address 169.254.169.254"),
    ("2002:7f00:1::1", "6to4 address 2002:7f00:1::1 embeds loopback address 127.0.0.1"),
    ("2002:c0a8:101::", "embeds private address 192.168.1.1"),
    ("::ffff:0:10.0.0.1", "IPv4-translated"),
]

ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",  # just past 172.16/12
    "100.128.0.1",  # just past 100.64/10
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public address
    "64:ff9b::808:808",  # NAT64 to a public address
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("address", "expected"), FORBIDDEN)
def test_forbidden(address: str, expected: str) -> None:
    reason = forbidden_reason(ip_address(address))
    assert reason is not None
    assert expected in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_allowed(address: str) -> None:
    assert forbidden_reason(ip_address(address)) is None


def test_reason_names_the_address() -> None:
    assert forbidden_reason(ip_address("127.0.0.1")) == "loopback address 127.0.0.1"
    assert forbidden_reason(ip_address("fe80::1")) == "link-local address fe80::1"
