"""Classification throughput with 1, 2 and 4 classifier processes on one Redis server.

An embedded Redis (``core.embedded.EmbeddedRedis``, unix socket) is started for the run; the
shared server at 127.0.0.1:6379 is never touched. For each K the database is flushed, N items
are stored with their ``item.ingested`` events published to ``nm:stream:items`` in the same
transaction (what the ingestor does; not timed), then K ``python -m runner.cli classifier``
processes are started (distinct consumer names, default settings and log level, output to
/dev/null) and the clock runs until ``items_classified`` in ``nm:stats`` reaches N.

Two figures per K: **wall** is N over the time from spawning the processes to the last
classification (process start-up, imports and rules compilation included, as an operator
scaling out would see it); **steady** counts only the items classified after every one of the
K consumers had made its first read, over that window. Speed-up is against K = 1, steady.
CPU columns read each classifier's and the Redis server's user + system time from
``/proc/<pid>/stat``, per item.

Items are stitched from the labelled dev set like ``bench.classifier`` does (2–8 real
paragraphs each), so story detection finds near-duplicates as it would in a real feed mix.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from bench.classifier import corpus
from core import keys
from core.bus import Bus
from core.embedded import EmbeddedRedis
from core.events import ItemIngested
from core.models import Item
from core.store import ItemStore

ROOT = Path(__file__).resolve().parents[1]
N_FULL = 20_000
N_QUICK = 2_000
PROCESSES = (1, 2, 4)
POLL_S = 0.05
DEADLINE_S = 900.0  # per K: a stuck classifier fails the run instead of hanging it
CHUNK = 50  # items stored concurrently while preparing (within the pool size)


@dataclass(frozen=True)
class Run:
    k: int
    n: int
    wall_s: float
    steady_items: int
    steady_s: float
    classifier_cpu_s: float
    redis_cpu_s: float

    @property
    def wall_rate(self) -> float:
        return self.n / self.wall_s

    @property
    def steady_rate(self) -> float:
        return self.steady_items / self.steady_s if self.steady_s > 0 else float("nan")


# -- preparing ------------------------------------------------------------------------------
def make_items(n: int) -> list[Item]:
    base = datetime.now(UTC).replace(microsecond=0)
    return [
        Item(
            id=f"{i:016x}",
            feed_id=f"outlet{i % 20}",
            url=f"https://news.test/{i}",
            guid=f"bench-scale-{i}",
            title=title,
            summary="",
            text=text,
            language="en",
            published=base - timedelta(minutes=i),
        )
        for i, (title, text) in enumerate(corpus(n))
    ]


async def prepare(url: str, items: list[Item]) -> None:
    """Flush, then store every item and publish its event atomically, as the ingestor does."""
    r: Any = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await r.flushdb()
        store = ItemStore(r)
        bus = Bus(r, maxlen=max(100_000, 2 * len(items)))
        now = datetime.now(UTC)

        async def add(item: Item) -> None:
            event = ItemIngested(item=item)
            await store.add(
                item, now=now, outbox=lambda pipe: bus.queue(pipe, keys.STREAM_ITEMS, event)
            )

        for i in range(0, len(items), CHUNK):
            await asyncio.gather(*(add(item) for item in items[i : i + CHUNK]))
        if await r.xlen(keys.STREAM_ITEMS) != len(items):
            raise RuntimeError("not every item.ingested event was published")
    finally:
        await r.aclose()


# -- measuring ------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def classified(c: redis.Redis) -> int:
    return int(c.hget(keys.STATS, "items_classified") or 0)


def consumers(c: redis.Redis) -> int:
    try:
        return len(c.xinfo_consumers(keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER))
    except redis.ResponseError:  # no group yet
        return 0


def spawn(url: str, k: int, tmp: Path) -> list[subprocess.Popen[bytes]]:
    base = {key: v for key, v in os.environ.items() if not key.startswith("NEWSMON_")}
    base.update(NEWSMON_REDIS_URL=url, NEWSMON_DATA_DIR=str(tmp / "unused"))
    return [
        subprocess.Popen(
            [sys.executable, "-m", "runner.cli", "classifier"],
            cwd=ROOT,
            env={**base, "NEWSMON_CONSUMER_NAME": f"bench-classifier-{i}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(k)
    ]


def measure(server: EmbeddedRedis, items: list[Item], k: int, tmp: Path) -> Run:
    n = len(items)
    asyncio.run(prepare(server.url, items))
    c = redis.Redis(unix_socket_path=str(server.sock), decode_responses=True)
    assert server.pid is not None
    redis_cpu0 = cpu_seconds(server.pid)
    t0 = time.perf_counter()
    procs = spawn(server.url, k, tmp)
    try:
        steady_t, steady_n = None, 0
        deadline = t0 + DEADLINE_S
        while (done := classified(c)) < n:
            if steady_t is None and consumers(c) >= k:
                steady_t, steady_n = time.perf_counter(), done
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a classifier exited with {[p.poll() for p in procs]}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{k} classifier(s) stalled at {done}/{n}")
            time.sleep(POLL_S)
        t1 = time.perf_counter()
        cpu = sum(cpu_seconds(p.pid) for p in procs)
        redis_cpu = cpu_seconds(server.pid) - redis_cpu0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        c.close()
    if steady_t is None:  # finished before every consumer had read: no steady window
        steady_t, steady_n = t1, n
    return Run(k, n, t1 - t0, n - steady_n, t1 - steady_t, cpu, redis_cpu)


# -- the section ----------------------------------------------------------------------------
def _row(cells: list[str]) -> str:
    return f"{cells[0]:>10}" + "".join(f"{c:>14}" for c in cells[1:])


def report(runs: list[Run], version: str) -> None:
    cores = os.cpu_count() or 1
    n = runs[0].n
    print(f"redis-server {version} (embedded, unix socket); N = {n:,} items; {cores} CPU cores")
    print()
    print(
        _row(["processes", "wall it/s", "steady it/s", "speed-up", "cls CPU ms/it", "redis ms/it"])
    )
    one = runs[0].steady_rate
    for r in runs:
        print(
            _row(
                [
                    str(r.k),
                    f"{r.wall_rate:,.0f}",
                    f"{r.steady_rate:,.0f}",
                    f"{r.steady_rate / one:.2f}x",
                    f"{r.classifier_cpu_s / r.n * 1000:.2f}",
                    f"{r.redis_cpu_s / r.n * 1000:.2f}",
                ]
            )
        )
    first = runs[0]
    per_item = (first.classifier_cpu_s + first.redis_cpu_s) / first.n  # CPU s per item
    ceiling = cores / per_item / one if per_item > 0 else float("nan")
    print(
        f"ceiling: {cores} cores shared by the classifiers and redis-server (and this poller) "
        f"cap the speed-up at {cores}x; at the measured {per_item * 1000:.2f} CPU ms/item "
        f"(classifier + redis) all {cores} cores busy give {cores / per_item:,.0f} it/s, "
        f"{ceiling:.2f}x of K = 1. K above {cores} only adds contention."
    )


def run(quick: bool) -> None:
    n = N_QUICK if quick else N_FULL
    items = make_items(n)
    with tempfile.TemporaryDirectory(prefix="nm-bench-scale-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        try:
            c = redis.Redis(unix_socket_path=str(server.sock), decode_responses=True)
            version = str(c.info("server").get("redis_version", "?"))
            c.close()
            runs = [measure(server, items, k, Path(tmp)) for k in PROCESSES]
        finally:
            server.stop()
    report(runs, version)
