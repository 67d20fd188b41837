"""Polling feeds end to end against real local HTTP servers and a real Redis: conditional
GET, dedup across polls and feeds, updates, redirects, 410, failures that back off, and
hostile responses that end within their limits while the other feeds go on."""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core import keys
from core.bus import Bus
from core.events import decode
from core.store import ItemStore
from ingestor.feeds import FeedDef
from ingestor.fetcher import Fetcher
from ingestor.poller import Politeness, Poller
from ingestor.scheduler import Scheduler
from ingestor.service import Ingestor
from ingestor.state import FeedRegistry
from tests.ingestor.httpserver import RecordedRequest, Reply, TestServer

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def rss(items: list[tuple[str, str, str]], *, ttl: int | None = None) -> bytes:
    """RSS 2.0 with (guid, title, description) items linking to https://news.test/<guid>."""
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>https://news.test/{g}?utm_source=rss</link>"
        f"<description>{d}</description>"
        f"<pubDate>{format_datetime(T0 - timedelta(hours=i))}</pubDate></item>"
        for i, (g, t, d) in enumerate(items)
    )
    extra = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Test outlet</title>'
        f"<link>https://news.test/</link>{extra}{body}</channel></rss>"
    ).encode()


ITEMS = [
    ("a1", "Cambodia and Laos hold border talks", "RCAF and the Lao People's Army met."),
    ("a2", "Joint exercise planned", "Cambodian and Lao troops will train together."),
]


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


@pytest.fixture
async def rig(r):
    clock = Clock()
    registry = FeedRegistry(r)
    store = ItemStore(r)
    fetcher = Fetcher(allow_private=True, deadline=3.0, connect_timeout=1.0, max_bytes=1_000_000)
    poller = Poller(
        registry,
        Ingestor(store, Bus(r), clock),
        fetcher,
        clock,
        politeness=Politeness(host_spacing_s=0.0),
        rand=lambda: 0.5,
    )
    yield registry, store, poller, clock
    await fetcher.aclose()


async def _add(registry: FeedRegistry, clock: Clock, url: str, fid: str) -> FeedDef:
    feed = FeedDef(id=fid, url=url, name=fid)
    await registry.add(feed, now=clock())
    return feed


async def _events(r) -> list:
    return [decode(f) for _, f in await r.xrange(keys.STREAM_ITEMS)]


async def test_first_poll_stores_and_publishes_then_304_costs_nothing(r, rig, server):
    registry, store, poller, clock = rig

    def respond(req: RecordedRequest) -> Reply:
        if req.headers.get("if-none-match") == '"v1"':
            return Reply(status=304)
        return Reply(
            body=rss(ITEMS), headers={"etag": '"v1"', "content-type": "application/rss+xml"}
        )

    server.handle("/feed", respond)
    await _add(registry, clock, server.url("/feed"), "f1")
    first = await poller.poll("f1")
    assert (first.outcome, first.new) == ("fetched", 2)
    events = await _events(r)
    assert [e.TYPE for e in events] == ["item.ingested"] * 2
    assert events[0].item.url == "https://news.test/a1"  # tracking parameter gone
    state = await registry.state("f1")
    assert state.etag == '"v1"' and state.consecutive_failures == 0
    assert state.next_check_at == clock() + timedelta(minutes=15)

    clock.advance(minutes=16)
    second = await poller.poll("f1")
    assert second.outcome == "not-modified"
    assert server.requests_to("/feed")[-1].headers["if-none-match"] == '"v1"'
    assert len(await _events(r)) == 2  # nothing republished
    assert await store.count() == 2


async def test_changed_item_publishes_update_and_duplicates_across_feeds_are_stored_once(
    r, rig, server
):
    registry, store, poller, clock = rig
    server.route("/one", body=rss(ITEMS))
    server.route("/two", body=rss(ITEMS[:1]))  # the same item from another feed
    await _add(registry, clock, server.url("/one"), "one")
    await _add(registry, clock, server.url("/two"), "two")
    await poller.poll("one")
    two = await poller.poll("two")
    assert (two.new, two.seen) == (0, 1)
    assert await store.count() == 2
    server.route("/one", body=rss([(ITEMS[0][0], "Cambodia and Laos sign border protocol", "x")]))
    again = await poller.poll("one")
    assert again.updated == 1
    types = [e.TYPE for e in await _events(r)]
    assert types == ["item.ingested", "item.ingested", "item.updated"]


async def test_a_tick_skips_a_feed_polled_since_it_read_the_due_list(r, rig, server):
    registry, store, poller, clock = rig
    server.route("/feed", body=rss(ITEMS))
    await _add(registry, clock, server.url("/feed"), "f1")

    class StaleRegistry(FeedRegistry):
        """Another ingestor process whose tick read the due list before our poll."""

        async def due(self, now: datetime, limit: int = 1000) -> list[str]:
            return stale

    stale = await registry.due(clock())
    assert stale == ["f1"]
    assert (await poller.poll("f1")).outcome == "fetched"  # this process polls it first
    other = StaleRegistry(r)
    other_poller = Poller(
        other,
        Ingestor(store, Bus(r), clock),
        poller.fetcher,
        clock,
        politeness=Politeness(host_spacing_s=0.0),
    )
    scheduler = Scheduler(other, other_poller, clock)
    assert await scheduler.tick() == 1
    await asyncio.gather(*scheduler.in_flight.values())
    assert len(server.requests_to("/feed")) == 1  # not fetched a second time
    skipped = await other_poller.poll("f1", due_by=clock())
    assert skipped.outcome == "skipped" and "no longer due" in (skipped.error or "")
    again = await other_poller.poll("f1")  # `newsmon poll` and the API's "poll now" still do
    assert again.outcome == "fetched" and len(server.requests_to("/feed")) == 2


async def test_permanent_redirect_updates_url_and_410_stops_polling(r, rig, server):
    registry, _, poller, clock = rig
    server.redirect("/old", "/new", status=301)
    server.route("/new", body=rss(ITEMS))
    await _add(registry, clock, server.url("/old"), "moved")
    await poller.poll("moved")
    assert (await registry.state("moved")).url == server.url("/new")
    server.route("/new", status=410)
    clock.advance(hours=1)
    report = await poller.poll("moved")
    assert report.outcome == "gone"
    assert (await registry.state("moved")).gone
    assert "moved" not in await registry.due(clock() + timedelta(days=400))


async def test_failing_feed_backs_off_and_recovers_while_others_are_polled(r, rig, server):
    registry, _, poller, clock = rig
    server.route("/ok", body=rss(ITEMS))
    server.route("/broken", status=500)
    await _add(registry, clock, server.url("/ok"), "ok")
    await _add(registry, clock, server.url("/broken"), "broken")
    scheduler = Scheduler(registry, poller, clock)
    reports = {r_.feed_id: r_ for r_ in await scheduler.poll_now(["broken", "ok"])}
    assert reports["ok"].new == 2
    assert "500" in reports["broken"].error
    delays = []
    for _ in range(4):
        state = await registry.state("broken")
        delays.append(state.next_check_at - clock())
        clock.now = state.next_check_at
        await poller.poll("broken")
    assert delays == [timedelta(minutes=15 * 2**n) for n in range(4)]  # exponential
    assert (await registry.state("broken")).consecutive_failures == 5
    server.route("/broken", body=rss(ITEMS))
    clock.now = (await registry.state("broken")).next_check_at
    recovered = await poller.poll("broken")
    assert recovered.error is None
    state = await registry.state("broken")
    assert state.consecutive_failures == 0 and state.last_error is None


async def test_retry_after_is_honoured(r, rig, server):
    registry, _, poller, clock = rig
    server.route("/busy", status=503, headers={"retry-after": "7200"})
    await _add(registry, clock, server.url("/busy"), "busy")
    report = await poller.poll("busy")
    assert report.outcome == "retry-later"
    state = await registry.state("busy")
    assert state.next_check_at - clock() >= timedelta(hours=2)
    assert "retry-after" in state.next_check_reason


def _gzip_bomb() -> bytes:
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    return b"".join([*(comp.compress(zeros) for _ in range(200)), comp.flush()])


def _refs(level: int) -> str:
    return (f"&lol{level - 1};" if level > 1 else "&lol;") * 10


HOSTILE = {
    "/laughs": Reply(
        body=(
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b"".join(f'<!ENTITY lol{i} "{_refs(i)}">'.encode() for i in range(1, 10))
            + b']><rss version="2.0"><channel><title>&lol9;</title></channel></rss>'
        )
    ),
    "/xxe": Reply(
        body=b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><title>t</title><item><guid>x1</guid>'
        b"<title>&x;</title><description>&x;</description></item></channel></rss>"
    ),
    "/bomb": Reply(body=_gzip_bomb(), headers={"content-encoding": "gzip"}),
    "/huge": Reply(body=lambda: (b"x" * 65536 for _ in range(800))),  # 50 MB, chunked
    "/drip": Reply(body=rss(ITEMS), drip=1.0),
    "/loop": Reply(status=302, headers={"location": "/loop"}),
    "/html": Reply(
        body=b"<!doctype html><html><body>Moved</body></html>",
        headers={"content-type": "text/html"},
    ),
}


async def test_hostile_feeds_end_within_limits_and_the_good_feed_goes_on(r, rig, server):
    registry, store, poller, clock = rig
    for path, reply in HOSTILE.items():
        server.handle(path, lambda _req, reply=reply: reply)
        await _add(registry, clock, server.url(path), path.strip("/"))
    server.route("/good", body=rss(ITEMS))
    await _add(registry, clock, server.url("/good"), "good")
    scheduler = Scheduler(registry, poller, clock, concurrency=10)
    reports = {
        rep.feed_id: rep
        for rep in await scheduler.poll_now([*(p.strip("/") for p in HOSTILE), "good"])
    }
    assert reports["good"].new == 2 and reports["good"].error is None
    assert "decoded body exceeds the 1000000-byte limit" in reports["bomb"].error
    assert "decoded body exceeds the 1000000-byte limit" in reports["huge"].error
    assert "no complete response within 3 s" in reports["drip"].error
    assert "redirect loop" in reports["loop"].error
    assert reports["html"].error == "not a feed: looks like an HTML page"
    # entity tricks are parsed without expansion blow-up or file access
    assert reports["laughs"].outcome == "fetched" and reports["xxe"].outcome == "fetched"
    for fid in HOSTILE:
        state = await registry.state(fid.strip("/"))
        assert state.next_check_at > clock()  # scheduled again: never dropped
    for stored in await store.get_many([e.item.id for e in await _events(r)]):
        assert "root:" not in stored.item.title + stored.item.text  # no file leaked
        assert len(stored.item.title) < 10_000  # no entity blow-up


ARTICLE = (
    "<html><head><title>Border talks</title></head><body><nav>Home | World | Sport</nav>"
    "<article><h1>Cambodia and Laos hold border talks</h1>"
    + "".join(
        f"<p>Paragraph {i}: Royal Cambodian Armed Forces and Lao People's Army officers met in "
        f"Vientiane to discuss border security, demarcation and joint patrols along the "
        f"frontier, the defence ministry said in a statement on Tuesday.</p>"
        for i in range(8)
    )
    + "</article><footer>Follow us on social media</footer></body></html>"
).encode()


async def test_full_text_is_fetched_for_summary_only_feeds(r, rig, server):
    from ingestor.fulltext import FullText

    registry, _store, poller, clock = rig
    poller.fulltext = FullText(poller.fetcher)
    summary_only = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        f"<item><guid>ft1</guid><title>Border talks</title><link>{server.url('/article')}</link>"
        "<description>Short teaser.</description></item></channel></rss>"
    ).encode()
    server.route("/feed", body=summary_only)
    server.route("/article", body=ARTICLE, headers={"content-type": "text/html"})
    await registry.add(
        FeedDef(id="ft", url=server.url("/feed"), name="ft", fetch_full_text=True), now=clock()
    )
    report = await poller.poll("ft")
    assert report.new == 1
    [event] = await _events(r)
    assert "Paragraph 7" in event.item.text and "Follow us" not in event.item.text
    assert event.item.summary == "Short teaser."
    assert len(server.requests_to("/article")) == 1
    clock.advance(hours=1)
    await poller.poll("ft")  # a known item's page is not fetched again
    assert len(server.requests_to("/article")) == 1


async def test_requests_to_one_host_are_spaced(r, rig, server, monkeypatch):
    """Each request to the host starts once the host's slot is taken, and slots are spaced.

    The spacing is checked where it is kept, when each request may start (a slot taken):
    the server's arrival times add each request's own latency, which under load (a busy
    CI machine) varies by more than any fixed tolerance."""
    import time

    registry, _, poller, clock = rig
    poller.politeness = Politeness(host_spacing_s=0.3)
    arrived: dict[str, float] = {}
    taken: list[float] = []
    take = registry.host_slot

    async def stamped_slot(host: str, spacing_s: float) -> float:
        wait = await take(host, spacing_s)
        if wait <= 0:
            taken.append(time.monotonic())
        return wait

    def stamped(req: RecordedRequest) -> Reply:
        arrived[req.path] = time.monotonic()
        return Reply(body=rss(ITEMS))

    monkeypatch.setattr(registry, "host_slot", stamped_slot)
    for n in range(3):
        server.handle(f"/s{n}", stamped)
        await _add(registry, clock, server.url(f"/s{n}"), f"s{n}")
    await Scheduler(registry, poller, clock, concurrency=3).poll_now(["s0", "s1", "s2"])
    assert len(arrived) == 3 and len(taken) == 3
    # Redis expires the slot to the millisecond; a 20 ms margin for the clocks' rounding.
    assert all(b - a >= 0.28 for a, b in itertools.pairwise(taken))
    # The n-th request to arrive came after the n-th slot was taken: none went unspaced.
    assert all(a >= t for a, t in zip(sorted(arrived.values()), taken, strict=True))


async def test_recoverable_bad_feed_is_ingested_with_a_warning(r, rig, server):
    registry, _store, poller, clock = rig
    broken = rss(ITEMS).replace(b"Test outlet", b"Tom & Jerry")  # a bare ampersand
    server.route("/bozo", body=broken)
    await _add(registry, clock, server.url("/bozo"), "bozo")
    report = await poller.poll("bozo")
    assert report.new == 2 and report.error is None
    state = await registry.state("bozo")
    assert state.warnings and any("not well-formed" in w or "&" in w for w in state.warnings)


async def test_offline_default_feeds_only_back_off(r, caplog):
    """Offline (no DNS), the shipped feeds.yaml yields logged, backed-off errors, no crash."""
    import socket

    from core.http import GuardedBackend, GuardedTransport
    from core.settings import Settings
    from ingestor.feeds import load_feeds_file

    async def no_dns(host: str, port: int):
        raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host}")

    clock = Clock()
    registry = FeedRegistry(r)
    feeds = load_feeds_file(Settings().feeds_file)
    assert len(feeds) >= 5
    await registry.sync(feeds, now=clock())
    transport = GuardedTransport(GuardedBackend(resolver=no_dns))
    async with Fetcher(transport=transport) as fetcher:
        poller = Poller(
            registry,
            Ingestor(ItemStore(r), Bus(r), clock),
            fetcher,
            clock,
            politeness=Politeness(host_spacing_s=0.0),
            rand=lambda: 0.5,
        )
        reports = await Scheduler(registry, poller, clock).poll_now([f.id for f in feeds])
    assert len(reports) == len(feeds)
    assert all(
        rep.outcome == "failed" and "Name or service not known" in rep.error for rep in reports
    )
    for feed in feeds:
        state = await registry.state(feed.id)
        assert state.consecutive_failures == 1 and state.next_check_at > clock()
        assert state.next_check_reason.startswith("backoff")
    assert sum(1 for rec in caplog.records if rec.getMessage() == "feed polled") == len(feeds)
