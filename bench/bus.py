"""The event bus against raw redis-py, on an embedded Redis started for the run.

Both sides put the same bytes on the wire: the raw baseline sends the fields that
``core.events.encode`` produced for the same ``ItemIngested`` events, pre-encoded before the
clock starts; the bus encodes inside its publish (serialisation is the bus's work) and decodes
every entry into a typed event on the consuming side (the raw baseline does not decode).

Each repetition publishes N events in pipelined batches of 100 (XADD MAXLEN ~), then reads
them back in a consumer group (XREADGROUP COUNT 100) and acks each batch (XACK). End-to-end
is N over the time from the first publish to the last ack of the same repetition. Every figure
is the best of ``REPEATS`` repetitions; raw and bus repetitions alternate so that drift hits
both alike. Target: the bus end-to-end reaches at least ``TARGET`` of raw.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.utils

from core import keys
from core.bus import Bus, Consumer, Delivery, ensure_group
from core.embedded import EmbeddedRedis
from core.events import Event, ItemIngested, encode
from core.models import Item

N_FULL = 50_000
N_QUICK = 5_000
BATCH = 100
REPEATS = 3
TARGET = 0.50
GROUP = "bench"
BLOCK_MS = 10
MAX_IDLE_READS = 300  # consecutive empty reads (~3 s) before we call the consumer stalled

Fields = dict[str, str]


@dataclass(frozen=True)
class Timing:
    """Seconds spent publishing and consuming (read + ack) N events in one repetition."""

    publish: float
    consume: float

    @property
    def total(self) -> float:
        return self.publish + self.consume


@dataclass(frozen=True)
class Best:
    """Best (lowest) time of each phase over the repetitions; end-to-end is a real sum."""

    publish: float
    consume: float
    total: float

    @classmethod
    def of(cls, timings: list[Timing]) -> Best:
        return cls(
            publish=min(t.publish for t in timings),
            consume=min(t.consume for t in timings),
            total=min(t.total for t in timings),
        )


# -- workload ------------------------------------------------------------------------------
_SUMMARY = (
    "Cambodian and Lao defence officials met in Vientiane to review border cooperation, "
    "joint training and the demining programme along their shared frontier, according to "
    "a statement released by the ministry after the talks."
)
_TEXT = " ".join(
    [
        "The delegations discussed the annual plan of exchanges between the two armies,",
        "including officer education, disaster relief drills and the exchange of liaison",
        "officers at provincial level. Both sides agreed to meet again before the end of",
        "the year to assess progress on the memorandum signed in 2019.",
    ]
)


def make_events(n: int) -> list[ItemIngested]:
    """N distinct, realistic ``ItemIngested`` events (a short news item each)."""
    base = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    events = []
    for i in range(n):
        item = Item(
            id=f"{i:016x}",
            feed_id="khmertimes",
            url=f"https://www.khmertimeskh.com/50{i:06d}/cambodia-laos-defence-talks/",
            guid=f"https://www.khmertimeskh.com/?p=50{i:06d}",
            title=f"Cambodia and Laos pledge closer defence ties ({i})",
            summary=_SUMMARY,
            text=_TEXT,
            authors=["Khmer Times"],
            tags=["Cambodia", "Laos", "Defence"],
            language="en",
            outlet="Khmer Times",
            published=base + timedelta(minutes=i),
        )
        events.append(ItemIngested(item=item))
    return events


class Counter:
    """The trivial handler: counts the events it is given."""

    def __init__(self) -> None:
        self.n = 0

    async def __call__(self, event: Event, delivery: Delivery) -> None:
        self.n += 1


# -- one repetition of each side -----------------------------------------------------------
async def raw_once(r: Any, stream: str, encoded: list[Fields], maxlen: int) -> Timing:
    """redis-py alone: pipelined XADD, XREADGROUP, XACK; nothing is encoded or decoded."""
    n = len(encoded)
    await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        async with r.pipeline(transaction=False) as pipe:
            for fields in encoded[i : i + BATCH]:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
            await pipe.execute()
    t1 = time.perf_counter()
    done = idle = 0
    while done < n:
        reply = await r.xreadgroup(GROUP, "raw", {stream: ">"}, count=BATCH, block=BLOCK_MS)
        if not reply:
            idle += 1
            if idle > MAX_IDLE_READS:
                raise RuntimeError(f"raw consumer stalled at {done}/{n}")
            continue
        idle = 0
        for _stream, entries in reply:
            ids = [msg_id for msg_id, _fields in entries]
            await r.xack(stream, GROUP, *ids)
            done += len(ids)
    t2 = time.perf_counter()
    return Timing(t1 - t0, t2 - t1)


async def bus_once(r: Any, stream: str, events: list[ItemIngested], maxlen: int) -> Timing:
    """newsmon's bus: ``Bus.publish_many`` (encodes), ``Consumer.step`` (decodes, acks)."""
    n = len(events)
    await ensure_group(r, stream, GROUP)
    bus = Bus(r, maxlen=maxlen)
    counter = Counter()
    consumer = Consumer(r, stream, GROUP, "bus", counter, batch=BATCH, block_ms=BLOCK_MS)
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        await bus.publish_many(stream, events[i : i + BATCH])
    t1 = time.perf_counter()
    idle = 0
    while counter.n < n:
        if await consumer.step():
            idle = 0
        else:
            idle += 1
            if idle > MAX_IDLE_READS:
                raise RuntimeError(f"bus consumer stalled at {counter.n}/{n}")
    t2 = time.perf_counter()
    stats = consumer.stats
    if stats.failed or stats.dead_lettered or stats.handled != n:
        raise RuntimeError(f"bus consumer misbehaved: {stats}")
    return Timing(t1 - t0, t2 - t1)


# -- the section ---------------------------------------------------------------------------
async def measure(url: str, n: int) -> None:
    events = make_events(n)
    encoded = [encode(e) for e in events]  # the raw side's wire fields, equal to the bus's
    payload = sum(len(k) + len(v) for k, v in encoded[0].items())
    maxlen = max(100_000, 2 * n)  # never trim an entry before it is consumed
    r: Any = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        info = await r.info("server")
        raw_t: list[Timing] = []
        bus_t: list[Timing] = []
        for rep in range(REPEATS):
            stream = f"nm:bench:raw:{rep}"
            raw_t.append(await raw_once(r, stream, encoded, maxlen))
            await r.delete(stream)
            stream = f"nm:bench:bus:{rep}"
            bus_t.append(await bus_once(r, stream, events, maxlen))
            await r.delete(stream, keys.dead_letter(stream))
    finally:
        await r.aclose()
    report(info, n, payload, Best.of(raw_t), Best.of(bus_t))


def _row(label: str, cells: list[str]) -> str:
    return f"{label:<16}" + "".join(f"{c:>14}" for c in cells)


def report(info: dict[str, Any], n: int, payload: int, raw: Best, bus: Best) -> None:
    parser = "hiredis" if redis.utils.HIREDIS_AVAILABLE else "pure-Python (no hiredis)"
    print(
        f"redis-server {info.get('redis_version', '?')} (embedded, unix socket), "
        f"redis-py {redis.__version__}, parser {parser}"
    )
    print(
        f"N = {n:,} ItemIngested events, {payload:,} B of fields each, batches of {BATCH}; "
        f"best of {REPEATS} repetitions"
    )
    print()
    pairs = [(raw.publish, bus.publish), (raw.consume, bus.consume), (raw.total, bus.total)]
    print(_row("events/s", ["publish", "consume+ack", "end-to-end"]))
    print(_row("raw redis-py", [f"{n / r:,.0f}" for r, _b in pairs]))
    print(_row("newsmon bus", [f"{n / b:,.0f}" for _r, b in pairs]))
    print(_row("bus / raw", [f"{r / b:.0%}" for r, b in pairs]))
    print(_row("bus extra µs/ev", [f"{(b - r) / n * 1e6:+.1f}" for r, b in pairs]))
    ratio = raw.total / bus.total
    verdict = "target met" if ratio >= TARGET else "target NOT met"
    print(f"target: end-to-end bus/raw >= {TARGET:.0%}; measured {ratio:.0%}: {verdict}")


def run(quick: bool) -> None:
    n = N_QUICK if quick else N_FULL
    with tempfile.TemporaryDirectory(prefix="nm-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        try:
            asyncio.run(measure(server.url, n))
        finally:
            server.stop()
