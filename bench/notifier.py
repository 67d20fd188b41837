"""Webhook delivery: newsmon's ``Deliverer`` against a bare httpx POST loop, and end-to-end
latency from ``item.classified`` on the bus to the webhook's arrival.

A minimal asyncio HTTP/1.1 receiver (keep-alive, ``200`` with an empty body) runs in its own
PROCESS so it never shares the GIL with the side measured; it records when each
``webhook-id`` arrived (``time.time()``), served back on ``GET /stats``.

Throughput: N alerts are routed beforehand (embedded Redis, one subscription); then
``Deliverer.step`` drains them (claim, render, sign, POST, record the attempt in a
transaction) at concurrency ``CONCURRENCY``; the baseline POSTs the same N bodies with one
``httpx.AsyncClient`` and ``CONCURRENCY`` workers, nothing else. Best of ``REPEATS``,
alternating. Target: newsmon ≥ 70 % of the bare loop's alerts/s.

Latency: a ``Consumer`` + ``NotifierWorker`` + ``Deliverer`` (woken by the worker) run in this
process; ``LAT_N`` events are published one every ``LAT_GAP_S``; latency = arrival time at the
receiver − publish time. Target: p99 < 100 ms on the embedded Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import socket
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from core import keys
from core.alerts import AlertStore
from core.bus import Bus, Consumer, Delivery, ensure_group
from core.embedded import EmbeddedRedis
from core.events import ItemClassified
from core.models import Item, Labels
from core.store import ItemStore
from core.subscriptions import SubscriptionStore, WebhookChannel, new_subscription
from notifier.channels.webhook import WebhookSender
from notifier.worker import Deliverer, NotifierWorker

N_FULL, N_QUICK = 5000, 1000
LAT_FULL, LAT_QUICK = 500, 150
LAT_GAP_S = 0.02
CONCURRENCY = 50
REPEATS = 3
TARGET_RATIO = 0.70
TARGET_P99_MS = 100.0
NOW = datetime.now(UTC)


# -- the receiver (its own process) ----------------------------------------------------------
def _receiver(port: int, ready: Any) -> None:
    arrivals: dict[str, float] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                at = time.time()
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                }
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                body = b""
                if lines[0].startswith("GET /stats"):
                    body = json.dumps(arrivals).encode()
                elif lines[0].startswith("GET /reset"):
                    arrivals.clear()
                elif "webhook-id" in headers:
                    arrivals.setdefault(headers["webhook-id"], at)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- workload -------------------------------------------------------------------------------
def _item(i: int) -> Item:
    return Item(
        id=f"{i:016x}",
        feed_id="khmertimes",
        url=f"https://www.khmertimeskh.com/50{i:06d}/",
        title=f"Cambodia and Laos pledge closer border cooperation ({i})",
        summary="Defence officials met in Vientiane to review border cooperation.",
        outlet="Khmer Times",
        published=NOW - timedelta(minutes=i),
    )


LABELS = Labels(topics=["border_security"], countries=["KH", "LA"], relevant=True, score=0.8)


async def _prepare(r: Any, url: str, n: int, offset: int = 0) -> list[ItemClassified]:
    store = ItemStore(r)
    events = []
    for i in range(offset, offset + n):
        it = _item(i)
        await store.add(it, now=NOW)
        events.append(ItemClassified(item_id=it.id, feed_id=it.feed_id, labels=LABELS))
    return events


async def _subscribe(r: Any, url: str) -> None:
    sub = new_subscription(name="bench", channel=WebhookChannel(url=url), now=NOW)
    await SubscriptionStore(r).put(sub)


async def newsmon_once(r: Any, url: str, n: int, rep: int) -> float:
    worker = NotifierWorker(r)
    events = await _prepare(r, url, n, offset=rep * n)
    delivery = Delivery("bench", "0-0", 1)
    for e in events:
        await worker.handle(e, delivery)
    async with WebhookSender(transport=httpx.AsyncHTTPTransport()) as sender:
        deliverer = Deliverer(r, webhook=sender, concurrency=CONCURRENCY, batch=CONCURRENCY * 2)
        t0 = time.perf_counter()
        done = 0
        while done < n:
            done += await deliverer.step()
        elapsed = time.perf_counter() - t0
    delivered = sum(1 for a in await AlertStore(r).recent(limit=n) if a.status == "delivered")
    if delivered != n:
        raise RuntimeError(f"only {delivered}/{n} delivered")
    return elapsed


async def bare_once(url: str, n: int) -> float:
    body = b'{"type":"alert.created"}' + b" " * 900  # about the size of a real payload
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    async with httpx.AsyncClient() as client:

        async def work() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                resp = await client.post(url, content=body, headers={"webhook-id": f"b{i}"})
                resp.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(CONCURRENCY)))
        return time.perf_counter() - t0


async def latency(r: Any, base: str, n: int) -> list[float]:
    await r.flushdb()
    await _subscribe(r, f"{base}/hook")
    events = await _prepare(r, base, n, offset=10_000_000)
    wake = asyncio.Event()
    stop = asyncio.Event()
    async with WebhookSender(transport=httpx.AsyncHTTPTransport()) as sender:
        worker = NotifierWorker(r, wake=wake)
        deliverer = Deliverer(r, webhook=sender, wake=wake, concurrency=CONCURRENCY)
        stream = keys.STREAM_CLASSIFIED
        await ensure_group(r, stream, keys.GROUP_NOTIFIER)
        consumer = Consumer(r, stream, keys.GROUP_NOTIFIER, "bench", worker.handle, block_ms=100)
        tasks = [asyncio.create_task(consumer.run(stop)), asyncio.create_task(deliverer.run(stop))]
        bus = Bus(r)
        sent: dict[str, float] = {}
        async with httpx.AsyncClient() as client:
            await client.get(f"{base}/reset")
            for e in events:
                sent[e.event_id] = time.time()
                await bus.publish(stream, e)
                await asyncio.sleep(LAT_GAP_S)
            deadline = time.monotonic() + 30
            arrivals: dict[str, float] = {}
            while len(arrivals) < n and time.monotonic() < deadline:
                arrivals = (await client.get(f"{base}/stats")).json()
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
    store = AlertStore(r)
    out = []
    for webhook_id, at in arrivals.items():
        alert = await store.get(webhook_id.removeprefix("msg_"))
        if alert is not None:
            out.append((at - sent[alert.event_ids[0]]) * 1000)
    if len(out) != n:
        raise RuntimeError(f"only {len(out)}/{n} webhooks arrived")
    return out


async def measure(url: str, n: int, lat_n: int, base: str) -> None:
    r: Any = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await _subscribe(r, f"{base}/hook")
        ours, bare = [], []
        for rep in range(REPEATS):
            bare.append(await bare_once(f"{base}/hook", n))
            ours.append(await newsmon_once(r, f"{base}/hook", n, rep))
        lat = sorted(await latency(r, base, lat_n))
    finally:
        await r.aclose()
    b, o = n / min(bare), n / min(ours)
    print(f"N = {n:,} alerts, concurrency {CONCURRENCY}, best of {REPEATS}")
    print(f"{'bare httpx POST loop':<28}{b:>10,.0f} req/s")
    print(f"{'newsmon Deliverer':<28}{o:>10,.0f} alerts/s")
    verdict = "target met" if o / b >= TARGET_RATIO else "target NOT met"
    print(f"ratio {o / b:.0%} (target >= {TARGET_RATIO:.0%}): {verdict}")
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    verdict = "target met" if p99 < TARGET_P99_MS else "target NOT met"
    print(
        f"end-to-end item.classified -> webhook arrival, {lat_n} events every "
        f"{LAT_GAP_S * 1000:.0f} ms: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms "
        f"(target p99 < {TARGET_P99_MS:.0f} ms): {verdict}"
    )


def run(quick: bool) -> None:
    port = _free_port()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_receiver, args=(port, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(15):
            raise RuntimeError("the receiver did not start")
        with tempfile.TemporaryDirectory(prefix="nm-bench-") as tmp:
            server = EmbeddedRedis(Path(tmp) / "redis")
            server.start()
            try:
                asyncio.run(
                    measure(
                        server.url,
                        N_QUICK if quick else N_FULL,
                        LAT_QUICK if quick else LAT_FULL,
                        f"http://127.0.0.1:{port}",
                    )
                )
            finally:
                server.stop()
    finally:
        proc.terminate()
        with contextlib.suppress(Exception):
            proc.join(5)
