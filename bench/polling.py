"""Polling many feeds: newsmon's Poller + Scheduler against lemon24/reader, same HTTP server.

A local HTTP/1.1 server (asyncio, keep-alive, ETag / If-None-Match → 304) runs in its own
PROCESS so it never shares the GIL with the side being measured. It serves N feeds of
``ITEMS`` items each: news-like RSS 2.0 (guid, link, pubDate, dc:creator, categories, and a
CDATA description of 1–3 KB of HTML paragraphs with relative links and images). Its own
throughput is measured alone first, with a raw asyncio client, and printed.

newsmon: an embedded Redis (temp dir, nothing kept on disk: no AOF, no snapshots, as
reader's ``:memory:`` SQLite keeps nothing either) and what ``newsmon poll`` runs:
``Scheduler.poll_now`` over every feed with concurrency ``CONCURRENCY``, the polls carried
out by ``runner.polling.polls_for`` (poll worker processes, one per core, each with its own
``Poller``; per-host spacing 0, private addresses allowed; log level WARNING, as reader
logs nothing per feed either). The workers are started before the clock. For each N: a
first pass (every feed new: fetch, parse, upsert, publish) and an all-304 pass, each timed
once, then the all-304 pass ``REPEAT_304`` times (it lasts a fraction of a second: one
stall of the machine would decide a single run) and its median kept; Redis is flushed
between Ns.

reader (lemon24/reader 3.x, optional: ``pip install reader``): ``make_reader(":memory:")``,
``add_feed`` for each of the same ``READER_N`` feeds, ``update_feeds()`` (first pass), then
``update_feeds(scheduled=False)`` (second pass: everything answers 304; ``scheduled=False``
because reader would otherwise skip feeds updated less than an hour ago), also
``REPEAT_304`` times, median kept. reader has no
SSRF guard, so loopback URLs need no option. It is timed with its default ``workers=1`` (the
target) and with ``workers=READER_WORKERS`` threads for reference.

Targets (issue #3 item 11): at the reader's N, newsmon's first pass ≥ 5× reader's feeds/s and
newsmon's all-304 pass ≥ 5× reader's all-304 pass.

Besides wall time, the CPU seconds used by each process during a pass are printed (this
process, the poll workers, the HTTP server, redis-server): on a 2-core machine that shows
who is the bottleneck.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing as mp
import os
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from core.connection import RedisHandle, make_client
from core.embedded import EmbeddedRedis
from core.settings import Settings
from ingestor.feeds import FeedDef
from ingestor.poller import PollReport
from ingestor.scheduler import Scheduler
from ingestor.state import FeedRegistry
from runner.loops import event_loop_for, run_async, tune_gc_for_serving
from runner.polling import polls_for
from runner.pollworkers import PollWorkers, worker_count

NS_FULL = (100, 500, 2000)
NS_QUICK = (100, 500)
READER_N = 500
READER_N_QUICK = 100
READER_WORKERS = 20
ITEMS = 50
CONCURRENCY = 50
TARGET = 5.0
REPEAT_304 = 5  # all-304 passes per side; the median is reported
SELFTEST_CONNECTIONS = 50
STATS_PATH = b"/_stats"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# -- the feeds -----------------------------------------------------------------------------
_SENTENCES = [
    "Cambodian and Lao defence officials met in Vientiane to review border cooperation.",
    "The talks covered joint training, demining and the exchange of liaison officers.",
    "A ministry spokesman said both sides agreed to step up patrols along the frontier.",
    "The Royal Cambodian Armed Forces will host a disaster relief drill next month.",
    "Officers from the Lao People's Army are expected to attend as observers.",
    "The memorandum signed in 2019 provides for annual meetings of the two general staffs.",
    "Analysts say the agreement reflects growing concern over cross-border trafficking.",
    "Provincial authorities reported the seizure of timber and methamphetamine last week.",
    "The defence minister thanked his counterpart for assistance during the floods.",
    "A joint commission will meet before the end of the year to assess progress.",
    "Both armies plan to open a hotline between their regional commands.",
    "The exercise will involve engineering units, medical teams and helicopters.",
    "Diplomats in Phnom Penh described the atmosphere of the meeting as cordial.",
    "Villagers near the border welcomed the plan to clear unexploded ordnance.",
    "The delegation also visited a military academy and a field hospital.",
    "Observers noted that the two countries have deepened ties since the 2010s.",
    "The statement did not mention the disputed sections of the boundary.",
    "Training courses for junior officers will be held in both capitals.",
    "A senior general said cooperation would focus on humanitarian missions.",
    "The meeting ended with the signing of a protocol on information sharing.",
]
_TAGS = ["Cambodia", "Laos", "Defence", "Border", "ASEAN", "Demining", "Trafficking", "Military"]


def make_feed(feed_no: int, items: int = ITEMS) -> bytes:
    """One realistic RSS 2.0 document, the same bytes every time for a given ``feed_no``."""
    rnd = random.Random(feed_no)
    host = f"outlet{feed_no % 97}.example.com"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
        f"<title>Outlet {feed_no} — Defence and Security</title>\n"
        f"<link>https://{host}/</link>\n"
        f'<atom:link href="https://{host}/feed/{feed_no}/" rel="self" '
        'type="application/rss+xml"/>\n'
        "<description>Regional defence and security news</description>\n"
        "<language>en-US</language>\n"
        f"<lastBuildDate>{format_datetime(T0)}</lastBuildDate>\n"
    ]
    for j in range(items):
        post = feed_no * 1000 + j
        slug = f"cambodia-laos-defence-{post}"
        target = rnd.randint(1000, 3000)
        html: list[str] = []
        size = 0
        while size < target:
            sentences = rnd.sample(_SENTENCES, rnd.randint(2, 4))
            if rnd.random() < 0.4:
                sentences[0] = (
                    f'<a href="/{2025 - rnd.randint(0, 3)}/related-{rnd.randint(1, 99999)}/">'
                    f"{sentences[0]}</a>"
                )
            if rnd.random() < 0.3:
                sentences[-1] = f"<strong>{sentences[-1]}</strong>"
            para = "<p>" + " ".join(sentences) + "</p>"
            if rnd.random() < 0.15:
                para += (
                    f'<p><img src="/wp-content/uploads/{post}-{size}.jpg" '
                    'alt="Officials at the meeting" width="640" height="360"/></p>'
                )
            html.append(para)
            size += len(para)
        categories = "".join(f"<category><![CDATA[{t}]]></category>" for t in rnd.sample(_TAGS, 3))
        published = format_datetime(T0 - timedelta(minutes=37 * j + feed_no % 60))
        parts.append(
            "<item>\n"
            f"<title>Cambodia and Laos pledge closer defence ties ({feed_no}/{j})</title>\n"
            f"<link>https://{host}/2025/03/01/{slug}/</link>\n"
            f"<dc:creator><![CDATA[Staff reporter {rnd.randint(1, 40)}]]></dc:creator>\n"
            f"<pubDate>{published}</pubDate>\n{categories}\n"
            f'<guid isPermaLink="false">https://{host}/?p={post}</guid>\n'
            f"<description><![CDATA[{''.join(html)}]]></description>\n"
            "</item>\n"
        )
    parts.append("</channel>\n</rss>\n")
    return "".join(parts).encode()


def feed_path(feed_no: int) -> str:
    return f"/feed/{feed_no}.xml"


# -- the HTTP server (runs in its own process) ----------------------------------------------
class _FeedProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, GET only; 304 when If-None-Match names the current ETag."""

    def __init__(self, feeds: dict[bytes, tuple[bytes, bytes]], stats: dict[str, int]) -> None:
        self.feeds = feeds
        self.stats = stats
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.stats["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        assert self.transport is not None
        lines = head.split(b"\r\n")
        target = lines[0].split(b" ")[1] if lines[0].count(b" ") >= 2 else b""
        inm = b""
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"if-none-match":
                inm = value.strip()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if target == STATS_PATH:
            self._send(b"200 OK", b"application/json", json.dumps(self.stats).encode(), b"")
        elif (entry := self.feeds.get(target)) is None:
            self.stats["404"] += 1
            self._send(b"404 Not Found", b"text/plain", b"not found", b"")
        elif inm and entry[0] in [t.strip() for t in inm.split(b",")]:
            self.stats["304"] += 1
            self._send(b"304 Not Modified", None, b"", entry[0])
        else:
            self.stats["200"] += 1
            self._send(b"200 OK", b"application/rss+xml; charset=utf-8", entry[1], entry[0])
        if close:
            self.transport.close()

    def _send(self, status: bytes, ctype: bytes | None, body: bytes, etag: bytes) -> None:
        assert self.transport is not None
        head = [b"HTTP/1.1 " + status, b"Server: bench-feeds"]
        if etag:
            head.append(b"ETag: " + etag)
        if ctype is not None:
            head.append(b"Content-Type: " + ctype)
            head.append(b"Content-Length: " + str(len(body)).encode())
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)


def _serve(n_feeds: int, ready: Any) -> None:
    """The server process: build every feed, listen on 127.0.0.1, report the port."""
    feeds = {}
    for i in range(n_feeds):
        body = make_feed(i)
        feeds[feed_path(i).encode()] = (f'"v1-{i}-{len(body)}"'.encode(), body)
    stats = {"200": 0, "304": 0, "404": 0, "connections": 0}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _FeedProtocol(feeds, stats), "127.0.0.1", 0, backlog=1024
        )
        port = server.sockets[0].getsockname()[1]
        sizes = [len(b) for _, b in feeds.values()]
        ready.send((port, sum(sizes) / len(sizes)))
        ready.close()
        await server.serve_forever()

    asyncio.run(main())


class FeedServer:
    """The server process, started and ended by us (by its own handle, nothing broader)."""

    def __init__(self, n_feeds: int) -> None:
        self.n_feeds = n_feeds
        self.proc: Any = None
        self.port = 0
        self.mean_body = 0.0

    def __enter__(self) -> FeedServer:
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_serve, args=(self.n_feeds, theirs), daemon=True)
        self.proc.start()
        theirs.close()
        if not ours.poll(120):
            self.proc.terminate()
            raise RuntimeError("feed server did not start within 120 s")
        self.port, self.mean_body = ours.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.join(10)

    def url(self, feed_no: int) -> str:
        return f"http://127.0.0.1:{self.port}{feed_path(feed_no)}"

    def etag(self, feed_no: int) -> str:
        return f'"v1-{feed_no}-{len(make_feed(feed_no))}"'

    async def stats(self) -> dict[str, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"GET " + STATS_PATH + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await reader.read()
        writer.close()
        return dict(json.loads(raw.split(b"\r\n\r\n", 1)[1]))


# -- CPU accounting --------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int | tuple[int, ...] | None) -> float:
    """User + system CPU seconds of a process (this one when ``pid`` is None)."""
    if pid is None:
        return time.process_time()
    if isinstance(pid, tuple):
        return sum(cpu_of(p) for p in pid)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class Pass:
    label: str
    n: int
    items: int
    wall: float
    cpu: dict[str, float]
    cpu_shown: tuple[str, ...] = ("client", "workers", "http", "redis")

    @property
    def feeds_s(self) -> float:
        return self.n / self.wall

    @property
    def items_s(self) -> float:
        return self.items / self.wall

    @property
    def ms_per_feed(self) -> float:
        return self.wall / self.n * 1000


class Meter:
    """Wall time and the CPU seconds each watched process used in between."""

    def __init__(self, pids: dict[str, Any]) -> None:
        self.pids = pids

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.c0 = {k: cpu_of(p) for k, p in self.pids.items()}

    def stop(self, label: str, n: int, items: int) -> Pass:
        wall = time.perf_counter() - self.t0
        cpu = {k: cpu_of(p) - self.c0[k] for k, p in self.pids.items()}
        return Pass(label, n, items, wall, cpu)


# -- the server alone ------------------------------------------------------------------------
async def _hammer(port: int, paths: list[bytes], etags: list[bytes] | None) -> int:
    """GET every path on one keep-alive connection; return body bytes read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = 0
    for k, path in enumerate(paths):
        cond = b"If-None-Match: " + etags[k] + b"\r\n" if etags else b""
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cond + b"\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            got += len(await reader.readexactly(length))
    writer.close()
    return got


async def server_alone(srv: FeedServer, n: int, rounds: int) -> tuple[float, float, float]:
    """(200 req/s, MB/s of bodies, 304 req/s) with a raw client over 50 connections."""
    paths = [feed_path(i % n).encode() for i in range(n * rounds)]
    etags = [srv.etag(i % n).encode() for i in range(n)] * rounds
    per = len(paths) // SELFTEST_CONNECTIONS
    chunks = [slice(c * per, (c + 1) * per) for c in range(SELFTEST_CONNECTIONS)]
    t0 = time.perf_counter()
    got = await asyncio.gather(*(_hammer(srv.port, paths[s], None) for s in chunks))
    t1 = time.perf_counter()
    await asyncio.gather(*(_hammer(srv.port, paths[s], etags[s]) for s in chunks))
    t2 = time.perf_counter()
    total = per * SELFTEST_CONNECTIONS
    return total / (t1 - t0), sum(got) / (t1 - t0) / 1e6, total / (t2 - t1)


# -- newsmon ---------------------------------------------------------------------------------
def _as_the_runner(main: Any) -> Any:
    """Run newsmon's side as the ingestor role runs: its event loop, its collector tuning
    (undone afterwards: reader's side runs with Python's defaults)."""
    threshold = gc.get_threshold()
    tune_gc_for_serving()
    try:
        return run_async(main, event_loop_for(("ingestor",), Settings().event_loop))
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _check(reports: list[PollReport], n: int, outcome: str, new: int) -> None:
    bad = [r for r in reports if r.outcome != outcome or r.new != new]
    if len(reports) != n or bad:
        sample = bad[0] if bad else None
        raise RuntimeError(f"newsmon: {len(reports)}/{n} reports, {len(bad)} unexpected: {sample}")


async def newsmon_run(
    redis_url: str, srv: FeedServer, n: int, pids: dict[str, Any]
) -> tuple[Pass, Pass]:
    r: Any = make_client(redis_url)
    settings = Settings(
        redis_url=redis_url,
        allow_private_networks=True,
        host_spacing_s=0.0,
        poll_concurrency=CONCURRENCY,
        log_level="WARNING",
    )
    try:
        await r.flushall()
        registry = FeedRegistry(r)
        now = utcnow()
        ids = []
        for i in range(n):
            feed = FeedDef(id=f"feed-{i:05d}", url=srv.url(i), name=f"Outlet {i}")
            await registry.add(feed, now=now)
            ids.append(feed.id)
        handle = RedisHandle(client=r, url=redis_url, embedded=None, version="")
        async with polls_for(settings, handle, feeds=n) as polls:
            if isinstance(polls, PollWorkers):
                pids = {**pids, "workers": polls.pids}
            scheduler = Scheduler(registry, polls, utcnow, concurrency=CONCURRENCY)
            meter = Meter(pids)
            before = await srv.stats()
            meter.start()
            reports = await scheduler.poll_now(ids)
            first = meter.stop("first", n, sum(x.new for x in reports))
            _check(reports, n, "fetched", ITEMS)
            passes = []
            for _ in range(REPEAT_304):
                meter.start()
                reports = await scheduler.poll_now(ids)
                passes.append(meter.stop("all-304", n, 0))
                _check(reports, n, "not-modified", 0)
            after = await srv.stats()
        if after["304"] - before["304"] != n * REPEAT_304 or after["200"] - before["200"] != n:
            raise RuntimeError(
                f"newsmon: server saw {before} → {after}, expected {n} + {n} × {REPEAT_304}"
            )
        return first, median(passes)
    finally:
        await r.aclose()


# -- reader ----------------------------------------------------------------------------------
def reader_run(
    srv: FeedServer, n: int, workers: int, pids: dict[str, Any]
) -> tuple[Pass, Pass] | str:
    # reader vendors a feedparser that needs the ``sgmllib3k`` package; the feedparser
    # newsmon uses (with ``feedparser-sgmllib``) is what reader falls back to with this.
    os.environ.setdefault("READER_NO_VENDORED_FEEDPARSER", "1")
    try:
        from reader import make_reader
    except ImportError:
        return "reader not installed (pip install 'reader>=3,<4'): comparison skipped"
    reader = make_reader(":memory:")
    try:
        for i in range(n):
            reader.add_feed(srv.url(i))
        meter = Meter(pids)
        before = asyncio.run(srv.stats())
        meter.start()
        reader.update_feeds(workers=workers)
        entries = reader.get_entry_counts().total
        first = meter.stop("first", n, entries)
        passes = []
        for _ in range(REPEAT_304):
            meter.start()
            reader.update_feeds(scheduled=False, workers=workers)
            passes.append(meter.stop("all-304", n, 0))
        after = asyncio.run(srv.stats())
        broken = sum(1 for f in reader.get_feeds() if f.last_exception is not None)
    finally:
        reader.close()
    if entries != n * ITEMS or broken:
        raise RuntimeError(f"reader: {entries} entries (expected {n * ITEMS}), {broken} broken")
    if after["200"] - before["200"] != n or after["304"] - before["304"] != n * REPEAT_304:
        raise RuntimeError(
            f"reader: server saw {before} → {after}, expected {n} + {n} × {REPEAT_304}"
        )
    return first, median(passes)


def median(passes: list[Pass]) -> Pass:
    return sorted(passes, key=lambda p: p.wall)[len(passes) // 2]


# -- the report ------------------------------------------------------------------------------
def _row(cells: list[str], widths: list[int]) -> str:
    """The first and last cells left-aligned (the last after two spaces), the rest right."""
    last = len(cells) - 1
    return "".join(
        f"{c:<{w}}" if i == 0 else f"  {c:<{w}}" if i == last else f"{c:>{w}}"
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()


_W = [26, 8, 10, 11, 10, 10, 40]


def _line(who: str, p: Pass) -> str:
    cpu = " ".join(f"{k}={v:.2f}" for k, v in p.cpu.items() if k in p.cpu_shown)
    return _row(
        [
            f"{who} {p.label}",
            f"{p.n:,}",
            f"{p.wall:.2f}",
            f"{p.feeds_s:,.0f}",
            f"{p.items_s:,.0f}" if p.items else "-",
            f"{p.ms_per_feed:.2f}",
            cpu,
        ],
        _W,
    )


def _verdict(label: str, ours: Pass, theirs: Pass) -> str:
    ratio = ours.feeds_s / theirs.feeds_s
    met = "target met" if ratio >= TARGET else "NOT met"
    return f"{label}: newsmon/reader = {ratio:.1f}× (target ≥ {TARGET:g}×): {met}"


def run(quick: bool) -> None:
    ns = NS_QUICK if quick else NS_FULL
    reader_n = READER_N_QUICK if quick else READER_N
    with tempfile.TemporaryDirectory(prefix="nm-bench-") as tmp, FeedServer(max(ns)) as srv:
        print(
            f"{max(ns):,} feeds × {ITEMS} items, {srv.mean_body / 1024:,.0f} KiB per feed "
            f"(RSS 2.0, 1–3 KB of HTML per item), served from 127.0.0.1:{srv.port} by an "
            f"asyncio HTTP/1.1 server in its own process (pid {srv.proc.pid}); "
            f"{os.cpu_count()} CPUs"
        )
        ok, mbs, nm = asyncio.run(server_alone(srv, min(max(ns), 500), 4 if quick else 8))
        print(
            f"server alone (raw asyncio client, {SELFTEST_CONNECTIONS} keep-alive connections; "
            f"a lower bound, the client shares the 2 cores): {ok:,.0f} req/s of 200 "
            f"({mbs:,.0f} MB/s), {nm:,.0f} req/s of 304"
        )
        redis = EmbeddedRedis(Path(tmp) / "redis", persist=False)
        redis.start()
        pids = {"client": None, "http": srv.proc.pid, "redis": redis.pid}
        try:
            results = [_as_the_runner(newsmon_run(redis.url, srv, n, pids)) for n in ns]
        finally:
            redis.stop()
        pids = {"client": None, "http": srv.proc.pid}
        rd = reader_run(srv, reader_n, 1, pids)
        rd_w = reader_run(srv, reader_n, READER_WORKERS, pids) if not isinstance(rd, str) else rd
    print()
    print(
        f"newsmon: Scheduler.poll_now, concurrency {CONCURRENCY}, poll workers "
        f"{worker_count(Settings())}, embedded Redis in memory; "
        f"reader {_reader_version()}: update_feeds(), :memory: SQLite"
    )
    print(f"(all-304: the median of {REPEAT_304} passes on each side)")
    print(_row(["", "feeds", "wall s", "feeds/s", "items/s", "ms/feed", "CPU s used"], _W))
    for first, again in results:
        print(_line("newsmon", first))
        print(_line("newsmon", again))
    if isinstance(rd, str):
        print(rd)
        return
    assert not isinstance(rd_w, str)
    for label, (first, again) in (("reader", rd), (f"reader w={READER_WORKERS}", rd_w)):
        print(_line(label, first))
        print(_line(label, again))
    print()
    growth = ", ".join(
        f"N={f.n:,}: {f.ms_per_feed:.2f} / {a.ms_per_feed:.2f} ms" for f, a in results
    )
    print(f"time per feed (first / all-304): {growth}")
    at_n = next(((f, a) for f, a in results if f.n == reader_n), None)
    if at_n is None:
        print(f"(no newsmon run at N={reader_n}: no ratio)")
        return
    print(f"at N = {reader_n:,}, against reader's default update_feeds() (workers=1):")
    print("  " + _verdict("first pass", at_n[0], rd[0]))
    print("  " + _verdict("all-304 pass", at_n[1], rd[1]))
    print(
        f"  for reference, against reader with workers={READER_WORKERS}: "
        f"first {at_n[0].feeds_s / rd_w[0].feeds_s:.1f}×, "
        f"all-304 {at_n[1].feeds_s / rd_w[1].feeds_s:.1f}×"
    )


def _reader_version() -> str:
    try:
        import reader

        return str(reader.__version__)
    except ImportError:
        return "(not installed)"
