"""ingestor.fetcher against real HTTP servers on 127.0.0.1 started by each test.

Nothing here reaches the internet: fetches to other addresses are refused by the SSRF guard
before any packet is sent, or go through a fake network backend.
"""

from __future__ import annotations

import asyncio
import calendar
import gzip
import ssl
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from email.utils import formatdate
from ipaddress import ip_address
from typing import Any

import brotli  # type: ignore[import-untyped]
import httpcore
import pytest

from core.guard import forbidden_reason
from core.http import AsyncioBackend, GuardedBackend, GuardedTransport, IPAddress
from ingestor.fetcher import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_BYTES,
    DRAIN_MAX,
    BadEncoding,
    BadURL,
    Blocked,
    BodyTooLarge,
    Fetcher,
    FetchTimeout,
    HTTPStatus,
    NetworkError,
    RetryLater,
    TooManyRedirects,
    parse_retry_after,
)
from tests.ingestor.httpserver import RecordedRequest, Reply, TestServer

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
MiB = 1024 * 1024


@pytest.fixture
def srv() -> Iterator[TestServer]:
    with TestServer() as server:
        yield server


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(allow_private=True, deadline=10) as f:
        yield f


# --- conditional GET ----------------------------------------------------------------------


async def test_200_then_conditional_304(srv: TestServer, fetcher: Fetcher) -> None:
    validators = {"etag": '"v1"', "last-modified": "Tue, 01 Sep 2026 10:00:00 GMT"}

    def respond(req: RecordedRequest) -> Reply:
        if req.headers.get("if-none-match") == '"v1"':
            return Reply(status=304, headers={"etag": '"v1"'})
        return Reply(body=FEED, headers={**validators, "content-type": "application/rss+xml"})

    srv.handle("/feed", respond)
    first = await fetcher.fetch(srv.url("/feed"))
    assert (first.status, first.body, first.not_modified) == (200, FEED, False)
    assert first.etag == '"v1"'
    assert first.last_modified == validators["last-modified"]
    assert first.headers["content-type"] == "application/rss+xml"
    assert first.url == srv.url("/feed")
    assert first.permanent_redirect is None
    assert first.elapsed_s > 0

    second = await fetcher.fetch(srv.url("/feed"), etag='"v1"', last_modified=first.last_modified)
    assert second.not_modified and second.status == 304 and second.body is None
    assert (second.etag, second.last_modified) == ('"v1"', first.last_modified)
    seen = srv.requests_to("/feed")[-1].headers
    assert seen["if-none-match"] == '"v1"'
    assert seen["if-modified-since"] == validators["last-modified"]


async def test_304s_redirects_and_small_errors_keep_the_connection(
    srv: TestServer, fetcher: Fetcher
) -> None:
    """A response closed before its end closes its connection; these are read, so one
    connection serves every request (a big error body, not drained, is dropped with it)."""
    srv.handle("/feed", lambda req: Reply(status=304, headers={"etag": '"v1"'}))
    srv.redirect("/old", srv.url("/feed"), status=302)
    srv.route("/gone-soon", status=503, body=b"busy, come back later")
    for _ in range(3):
        assert (await fetcher.fetch(srv.url("/feed"), etag='"v1"')).not_modified
    assert (await fetcher.fetch(srv.url("/old"), etag='"v1"')).not_modified
    with pytest.raises(RetryLater):
        await fetcher.fetch(srv.url("/gone-soon"))
    assert (await fetcher.fetch(srv.url("/feed"), etag='"v1"')).not_modified
    assert srv.connections == 1
    # Far more than the transport reads ahead (core.http11._HIGH_WATER) and the socket holds.
    srv.route("/huge-error", status=500, body=b"x" * max(DRAIN_MAX + 1, 16 << 20))
    with pytest.raises(HTTPStatus):
        await fetcher.fetch(srv.url("/huge-error"))
    assert (await fetcher.fetch(srv.url("/feed"), etag='"v1"')).not_modified
    assert srv.connections == 2  # the oversized body was not downloaded: new connection


async def test_request_headers(srv: TestServer, fetcher: Fetcher) -> None:
    srv.route("/feed", body=FEED)
    await fetcher.fetch(srv.url("/feed"))
    seen = srv.requests_to("/feed")[0].headers
    assert seen["user-agent"].startswith("newsmon/")
    assert "+https://github.com/newsmon" in seen["user-agent"]
    assert seen["accept-encoding"] == ACCEPT_ENCODING == "gzip, deflate, br"
    assert "application/rss+xml" in seen["accept"]
    assert "if-none-match" not in seen and "if-modified-since" not in seen
    await fetcher.fetch(srv.url("/feed"), accept="text/html")
    assert srv.requests_to("/feed")[1].headers["accept"] == "text/html"


async def test_304_without_validators_keeps_the_callers(srv: TestServer, fetcher: Fetcher) -> None:
    srv.route("/feed", status=304)
    result = await fetcher.fetch(srv.url("/feed"), etag='"a"', last_modified="yesterday")
    assert result.not_modified
    assert (result.etag, result.last_modified) == ('"a"', "yesterday")


# --- content coding -----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_encoded_bodies_decode(srv: TestServer, fetcher: Fetcher, encoding: str) -> None:
    body = FEED * 1000
    srv.route("/feed", body=body, encoding=encoding)
    result = await fetcher.fetch(srv.url("/feed"))
    assert result.body == body
    assert result.headers["content-encoding"] == encoding


async def test_raw_deflate_and_stacked_codings(srv: TestServer, fetcher: Fetcher) -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    srv.route(
        "/raw", body=raw.compress(FEED) + raw.flush(), headers={"content-encoding": "deflate"}
    )
    stacked = brotli.compress(gzip.compress(FEED))  # gzip first, then br (RFC 9110 §8.4)
    srv.route("/two", body=stacked, headers={"content-encoding": "gzip, br"})
    assert (await fetcher.fetch(srv.url("/raw"))).body == FEED
    assert (await fetcher.fetch(srv.url("/two"))).body == FEED


async def test_corrupt_or_unknown_coding(srv: TestServer, fetcher: Fetcher) -> None:
    srv.route("/bad", body=b"not gzip at all", headers={"content-encoding": "gzip"})
    srv.route("/zstd", body=b"whatever", headers={"content-encoding": "zstd"})
    with pytest.raises(BadEncoding, match="corrupt gzip"):
        await fetcher.fetch(srv.url("/bad"))
    with pytest.raises(BadEncoding, match="zstd"):
        await fetcher.fetch(srv.url("/zstd"))


# --- size cap -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed by streaming (never held whole): about 4.5 MB."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(1024)]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def brotli_bomb() -> bytes:
    """1 GiB of zeros as brotli: a couple of kilobytes."""
    compressor = brotli.Compressor(quality=5)
    zeros = bytes(MiB)
    parts = [compressor.process(zeros) for _ in range(1024)]
    parts.append(compressor.finish())
    return b"".join(parts)


@pytest.mark.parametrize(("bomb_name", "encoding"), [("gzip_bomb", "gzip"), ("brotli_bomb", "br")])
async def test_compression_bomb_stops_at_the_cap_with_bounded_memory(
    srv: TestServer, fetcher: Fetcher, request: pytest.FixtureRequest, bomb_name: str, encoding: str
) -> None:
    bomb: bytes = request.getfixturevalue(bomb_name)
    assert len(bomb) < DEFAULT_MAX_BYTES  # so the Content-Length check cannot catch it early
    srv.route("/bomb", body=bomb, headers={"content-encoding": encoding})
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="decoded body exceeds"):
            await fetcher.fetch(srv.url("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The cap (15 MiB) plus a few 64 KiB pieces (about 18 MiB measured). Inflating the bomb
    # would need 1 GiB; even a loop over httpx's aiter_bytes() that keeps nothing peaks above
    # 50 MiB, because httpx inflates each 64 KiB network read in one call.
    assert peak < 2 * DEFAULT_MAX_BYTES, f"peak {peak / MiB:.1f} MiB"


def _fifty_megabytes() -> Iterator[bytes]:
    chunk = b"x" * MiB
    for _ in range(50):
        yield chunk


async def test_large_declared_body_refused_before_reading(
    srv: TestServer, fetcher: Fetcher
) -> None:
    srv.route("/big", body=_fifty_megabytes, headers={"content-length": str(50 * MiB)})
    with pytest.raises(BodyTooLarge, match=f"Content-Length {50 * MiB} exceeds") as caught:
        await fetcher.fetch(srv.url("/big"))
    assert caught.value.limit == DEFAULT_MAX_BYTES
    assert caught.value.url == srv.url("/big")


async def test_large_streamed_body_stops_at_the_cap(srv: TestServer, fetcher: Fetcher) -> None:
    srv.route("/big", body=_fifty_megabytes)  # chunked: no Content-Length to judge by
    with pytest.raises(BodyTooLarge, match="decoded body exceeds"):
        await fetcher.fetch(srv.url("/big"))


async def test_body_at_the_cap_is_accepted(srv: TestServer) -> None:
    srv.route("/exact", body=b"y" * 1000, encoding="gzip")
    async with Fetcher(allow_private=True, max_bytes=1000) as small:
        assert (await small.fetch(srv.url("/exact"))).body == b"y" * 1000
    async with Fetcher(allow_private=True, max_bytes=999) as smaller:
        with pytest.raises(BodyTooLarge):
            await smaller.fetch(srv.url("/exact"))


# --- deadline -----------------------------------------------------------------------------


async def test_dripping_server_hits_the_deadline(srv: TestServer) -> None:
    srv.route("/slow", body=FEED, drip=1)  # one byte per second
    started = time.monotonic()
    async with Fetcher(allow_private=True, deadline=1.5) as f:
        with pytest.raises(FetchTimeout, match=r"within 1\.5 s"):
            await f.fetch(srv.url("/slow"))
    assert time.monotonic() - started < 3.0


async def test_slow_resolution_hits_the_connect_timeout() -> None:
    never = asyncio.Event()

    async def stuck(host: str, port: int) -> Sequence[IPAddress]:
        await never.wait()
        return []

    backend = GuardedBackend(allow_private=True, resolver=stuck)
    async with Fetcher(transport=GuardedTransport(backend), connect_timeout=0.2) as f:
        with pytest.raises(FetchTimeout, match="ConnectTimeout"):
            await f.fetch("http://feeds.example/rss")


# --- redirects ----------------------------------------------------------------------------


async def test_redirect_loop(srv: TestServer, fetcher: Fetcher) -> None:
    srv.redirect("/a", "/b")
    srv.redirect("/b", srv.url("/a"))
    with pytest.raises(TooManyRedirects, match="loop") as caught:
        await fetcher.fetch(srv.url("/a"))
    assert caught.value.url == srv.url("/a")


async def test_five_redirects_allowed_six_not(srv: TestServer, fetcher: Fetcher) -> None:
    for i in range(6):
        srv.redirect(f"/r{i}", f"/r{i + 1}")
    srv.route("/r6", body=FEED)
    assert (await fetcher.fetch(srv.url("/r1"))).body == FEED  # five hops
    with pytest.raises(TooManyRedirects, match="more than 5"):
        await fetcher.fetch(srv.url("/r0"))  # six


async def test_permanent_redirects_are_reported(srv: TestServer, fetcher: Fetcher) -> None:
    srv.redirect("/old", "/older-still", status=301)
    srv.redirect("/older-still", srv.url("/new"), status=308)
    srv.route("/new", body=FEED)
    result = await fetcher.fetch(srv.url("/old"))
    assert result.body == FEED
    assert result.url == result.permanent_redirect == srv.url("/new")


@pytest.mark.parametrize("temporary", [302, 303, 307])
async def test_a_temporary_hop_cancels_permanence(
    srv: TestServer, fetcher: Fetcher, temporary: int
) -> None:
    srv.redirect("/old", "/moving", status=301)
    srv.redirect("/moving", "/new", status=temporary)
    srv.route("/new", body=FEED)
    result = await fetcher.fetch(srv.url("/old"))
    assert result.url == srv.url("/new")
    assert result.permanent_redirect is None


async def test_permanent_redirect_to_a_304(srv: TestServer, fetcher: Fetcher) -> None:
    srv.redirect("/old", "/new", status=301)
    srv.route("/new", status=304)
    result = await fetcher.fetch(srv.url("/old"), etag='"x"')
    assert result.not_modified and result.permanent_redirect == srv.url("/new")
    assert srv.requests_to("/new")[0].headers["if-none-match"] == '"x"'


async def test_redirect_to_another_scheme_is_refused(srv: TestServer, fetcher: Fetcher) -> None:
    srv.redirect("/ftp", "ftp://example.com/feed")
    srv.redirect("/file", "file:///etc/passwd")
    for path in ("/ftp", "/file"):
        with pytest.raises(BadURL, match="redirected to"):
            await fetcher.fetch(srv.url(path))


async def test_redirect_without_location(srv: TestServer, fetcher: Fetcher) -> None:
    srv.route("/nowhere", status=302)
    with pytest.raises(HTTPStatus, match="Location") as caught:
        await fetcher.fetch(srv.url("/nowhere"))
    assert caught.value.code == 302


# --- statuses -----------------------------------------------------------------------------


async def test_410_is_gone(srv: TestServer, fetcher: Fetcher) -> None:
    srv.route("/feed", status=410, body=b"gone for good")
    result = await fetcher.fetch(srv.url("/feed"))
    assert result.gone and result.status == 410 and result.body is None


@pytest.mark.parametrize("code", [400, 403, 404, 500, 502])
async def test_other_errors(srv: TestServer, fetcher: Fetcher, code: int) -> None:
    srv.route("/feed", status=code)
    with pytest.raises(HTTPStatus, match=f"HTTP {code}") as caught:
        await fetcher.fetch(srv.url("/feed"))
    assert caught.value.code == caught.value.status == code


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("code", "retry_after", "expected"),
    [
        (429, "120", 120.0),
        (503, "0", 0.0),
        (429, formatdate(NOW + 90, usegmt=True), 90.0),
        (503, formatdate(NOW + 3600, usegmt=True), 3600.0),
        (503, formatdate(NOW - 60, usegmt=True), 0.0),  # a date in the past: now
        (429, "soon", None),
        (503, None, None),
    ],
)
async def test_retry_later(
    srv: TestServer, code: int, retry_after: str | None, expected: float | None
) -> None:
    srv.route("/feed", status=code, headers={"retry-after": retry_after} if retry_after else {})
    async with Fetcher(allow_private=True, clock=lambda: NOW) as f:
        with pytest.raises(RetryLater) as caught:
            await f.fetch(srv.url("/feed"))
    assert caught.value.status == code
    assert caught.value.retry_after == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 30 ", 30.0),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
        ("Fri, 15 Jan 2027 08:00:30 GMT", 30.0),  # IMF-fixdate
        ("Friday, 15-Jan-27 08:00:45 GMT", 45.0),  # obsolete RFC 850, still to be accepted
        ("Fri Jan 15 08:01:00 2027", 60.0),  # obsolete asctime (GMT implied)
        ("Fri, 15 Jan 2027 07:00:00 GMT", 0.0),  # in the past: now
        ("Fri, 32 Jan 2027 08:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = calendar.timegm((2027, 1, 15, 8, 0, 0))
    assert parse_retry_after(value, now) == expected


# --- URLs and network errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["ftp://example.com/feed", "file:///etc/passwd", "feed.xml", "http://", "javascript:x"]
)
async def test_only_http_urls(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(BadURL) as caught:
        await fetcher.fetch(url)
    assert caught.value.url == url


async def test_connection_refused_is_a_network_error(fetcher: Fetcher) -> None:
    with TestServer() as gone:
        url = gone.url("/feed")
    with pytest.raises(NetworkError, match="ConnectError") as caught:
        await fetcher.fetch(url)
    assert caught.value.__cause__ is not None


# --- the SSRF guard ---------------------------------------------------------------------------


class SpyBackend(httpcore.AsyncNetworkBackend):
    """Records connect_tcp calls, then connects for real (or not at all)."""

    def __init__(self, connect: bool = True) -> None:
        self.calls: list[tuple[str, int]] = []
        self._real = AsyncioBackend()  # the guarded transport's own default
        self._connect = connect

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port))
        if not self._connect:
            raise httpcore.ConnectError("spy does not connect")
        return await self._real.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


def fixed_resolver(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ip_address(a) for a in table[host]]

    return resolve


async def test_guard_refuses_the_test_server(srv: TestServer) -> None:
    srv.route("/feed", body=FEED)
    async with Fetcher() as guarded:  # production defaults: guard on
        with pytest.raises(Blocked, match=r"loopback address 127\.0\.0\.1") as caught:
            await guarded.fetch(srv.url("/feed"))
    assert caught.value.address == "127.0.0.1"
    assert caught.value.url == srv.url("/feed")
    assert srv.connections == 0  # refused before any packet
    async with Fetcher(allow_private=True) as open_:
        assert (await open_.fetch(srv.url("/feed"))).body == FEED


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:{port}/", "127.0.0.1"),
        ("http://[::1]:{port}/", "::1"),
        ("http://localhost:{port}/", None),  # 127.0.0.1 and/or ::1, as /etc/hosts says
        ("http://0x7f.1:{port}/", "127.0.0.1"),  # the resolver's inet_aton forms
        ("http://2130706433:{port}/", "127.0.0.1"),
        ("http://10.0.0.1/", "10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[fd00::1]/", "fd00::1"),
        ("http://[::ffff:127.0.0.1]:{port}/", "::ffff:7f00:1"),
        ("https://100.64.0.1/", "100.64.0.1"),
        ("http://0.0.0.0:{port}/", "0.0.0.0"),
    ],
)
async def test_forbidden_addresses_never_see_a_packet(
    srv: TestServer, url: str, address: str | None
) -> None:
    spy = SpyBackend()
    backend = GuardedBackend(inner=spy)
    async with Fetcher(transport=GuardedTransport(backend)) as guarded:
        with pytest.raises(Blocked) as caught:
            await guarded.fetch(url.format(port=srv.port))
    if address is not None:
        assert caught.value.address == address
    assert forbidden_reason(ip_address(caught.value.address)) == caught.value.reason
    assert spy.calls == []
    assert srv.connections == 0


def _exempt_port(port: int) -> Any:
    """A policy that lets one test server through, as if it were on the internet."""

    def policy(host: str, p: int, ip: IPAddress) -> str | None:
        return None if p == port else forbidden_reason(ip)

    return policy


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/admin", "http://localhost:{port}/"])
async def test_redirect_into_the_private_network_is_blocked(srv: TestServer, target: str) -> None:
    with TestServer() as internal:
        internal.route("/admin", body=b"secrets")
        srv.redirect("/feed", target.format(port=internal.port))
        backend = GuardedBackend(policy=_exempt_port(srv.port))
        async with Fetcher(transport=GuardedTransport(backend)) as f:
            with pytest.raises(Blocked, match=r"loopback address .* \(at http") as caught:
                await f.fetch(srv.url("/feed"))
        assert caught.value.url == srv.url("/feed")
        assert len(srv.requests_to("/feed")) == 1  # the allowed server was asked
        assert internal.connections == 0  # the private one never was


async def test_one_forbidden_address_among_many_blocks(srv: TestServer) -> None:
    spy = SpyBackend()
    resolver = fixed_resolver({"mixed.example": ["93.184.216.34", "10.0.0.5"]})
    backend = GuardedBackend(resolver=resolver, inner=spy)
    async with Fetcher(transport=GuardedTransport(backend)) as f:
        with pytest.raises(Blocked, match=r"mixed\.example \(10\.0\.0\.5\): private"):
            await f.fetch("http://mixed.example/feed")
    assert spy.calls == []


async def test_connects_to_the_vetted_address_not_the_name(srv: TestServer) -> None:
    srv.route("/feed", body=FEED)
    answers = [["127.0.0.3", "127.0.0.1"], ["203.0.113.66"]]  # a second answer: rebinding

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return [ip_address(a) for a in answers.pop(0)]

    spy = SpyBackend()
    backend = GuardedBackend(allow_private=True, resolver=rebinding, inner=spy)
    async with Fetcher(transport=GuardedTransport(backend)) as f:
        result = await f.fetch(f"http://feeds.example:{srv.port}/feed")
    assert result.body == FEED
    # 127.0.0.3 refused the connection, so the next vetted address was tried; the name itself
    # never reached the socket layer, and DNS was asked once.
    assert spy.calls == [("127.0.0.3", srv.port), ("127.0.0.1", srv.port)]
    assert answers == [["203.0.113.66"]]
    assert srv.requests_to("/feed")[0].headers["host"] == f"feeds.example:{srv.port}"


async def test_unresolvable_host_is_a_network_error() -> None:
    async def nxdomain(host: str, port: int) -> list[IPAddress]:
        raise OSError(-2, "Name or service not known")

    backend = GuardedBackend(resolver=nxdomain)
    async with Fetcher(transport=GuardedTransport(backend)) as f:
        with pytest.raises(NetworkError, match=r"cannot resolve feeds\.invalid"):
            await f.fetch("http://feeds.invalid/rss")


class _TLSProbe(httpcore.AsyncNetworkStream):
    def __init__(self) -> None:
        self.tls: list[tuple[ssl.SSLContext, str | None]] = []

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        self.tls.append((ssl_context, server_hostname))
        raise httpcore.ConnectError("probe: stop before the handshake")

    async def aclose(self) -> None:
        pass


class _ProbeBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.stream = _TLSProbe()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append((host, port))
        return self.stream


async def test_tls_verifies_the_url_host_while_dialling_the_ip() -> None:
    probe = _ProbeBackend()
    resolver = fixed_resolver({"feeds.example": ["93.184.216.34"]})
    backend = GuardedBackend(resolver=resolver, inner=probe)
    async with Fetcher(transport=GuardedTransport(backend)) as f:
        with pytest.raises(NetworkError, match="probe"):
            await f.fetch("https://feeds.example/rss")
    assert probe.calls == [("93.184.216.34", 443)]
    [(context, server_hostname)] = probe.stream.tls
    assert server_hostname == "feeds.example"  # SNI and the certificate check use the name
    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED
