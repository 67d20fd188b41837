"""The HTTP API under load: filtered item queries beside ``/healthz``, in the same run.

An embedded Redis is filled with N items (100,000; ``--quick``: 10,000), each classified with
one to three of 8 topics, stored through ``ItemStore`` like the services do. The API runs in
a uvicorn server (one process, the production app) on 127.0.0.1; a separate client process
keeps 50 connections busy for ``SECONDS`` per endpoint, and reports p50/p99 latency and
requests/s:

- ``GET /healthz``                    (the baseline: no Redis at all)
- ``GET /v1/items?topic=…``           (one topic index, 50 items a page)
- ``GET /v1/items?q=…``               (a word index, 50 items a page)

Targets: filtered queries p99 ≤ 25 ms and ≥ 1/3 of healthz's requests/s.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import socket
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis.asyncio as aioredis
import uvicorn

from api.app import create_app
from core.embedded import EmbeddedRedis
from core.models import Item, Labels
from core.settings import Settings
from core.store import ItemStore

N_FULL = 100_000
N_QUICK = 10_000
CONCURRENCY = 50
SECONDS = 5.0
TOPICS = [f"topic_{i}" for i in range(8)]
WORDS = [
    "border",
    "patrol",
    "ministry",
    "defence",
    "training",
    "flood",
    "relief",
    "customs",
    "police",
    "army",
]
TARGET_P99_MS = 25.0
TARGET_RATIO = 1 / 3
T0 = datetime(2020, 1, 1, tzinfo=UTC)


async def _fill(url: str, n: int) -> None:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    store = ItemStore(client)
    rng = random.Random(7)
    now = datetime.now(UTC)
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            text = " ".join(rng.choice(WORDS) for _ in range(12)) + f" story{i % 997}"
            item = Item(
                id=f"{i:016x}",
                feed_id=f"feed-{i % 20}",
                title=f"Item {i} on {rng.choice(WORDS)}",
                summary=text,
                text=text,
                url=f"https://example.org/{i}",
                published=T0 + timedelta(minutes=i),
            )
            await store.add(item, now=now)
            topics = sorted(set(rng.sample(TOPICS, rng.randint(1, 3))))
            labels = Labels(topics=topics, relevant=i % 3 == 0, score=rng.random())
            await store.set_labels(item.id, labels, event_id=f"e{i}", now=now)

    for start in range(0, n, 5000):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 5000, n))))
    await client.aclose()


def _serve(url: str, sock: socket.socket) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        app = create_app(Settings(load_seeds=False), client)
        server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, log_level="warning")
        )
        await server.serve(sockets=[sock])

    asyncio.run(main())


async def _load(base: str, path: str, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                resp = await client.get(path)
                latencies.append(time.perf_counter() - start)
                if resp.status_code != 200:
                    errors += 1

        await client.get(path)  # warm up
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return latencies, errors


def _client(base: str, path: str, seconds: float, out: mp.Queue) -> None:
    out.put(asyncio.run(_load(base, path, seconds)))


def run(quick: bool) -> None:
    n = N_QUICK if quick else N_FULL
    seconds = SECONDS / 2 if quick else SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp))
        redis_server.start()
        try:
            started = time.perf_counter()
            asyncio.run(_fill(redis_server.url, n))
            print(f"stored {n:,} items in {time.perf_counter() - started:.1f} s")
            _measure(redis_server.url, seconds)
        finally:
            redis_server.stop()


def _measure(url: str, seconds: float) -> None:
    ctx = mp.get_context("spawn")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = ctx.Process(target=_serve, args=(url, sock), daemon=True)
    server.start()
    try:
        _wait_up(base)
        rows = []
        for path in ("/healthz", "/v1/items?topic=topic_3", "/v1/items?q=customs"):
            queue: mp.Queue = ctx.Queue()
            client = ctx.Process(target=_client, args=(base, path, seconds, queue))
            client.start()
            latencies, errors = queue.get()
            client.join()
            lat = sorted(latencies)
            p50 = statistics.median(lat) * 1000
            p99 = lat[int(len(lat) * 0.99) - 1] * 1000
            rows.append((path, p50, p99, len(lat) / seconds, errors))
    finally:
        server.terminate()
        server.join()
    base_rps = rows[0][3]
    print(f"{'endpoint':28} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'vs healthz':>10} errors")
    for path, p50, p99, rps, errors in rows:
        print(f"{path:28} {p50:8.2f} {p99:8.2f} {rps:8.0f} {rps / base_rps:10.2f} {errors}")
    for path, _, p99, rps, _ in rows[1:]:
        ok = p99 <= TARGET_P99_MS and rps >= TARGET_RATIO * base_rps
        print(
            f"{path}: {'PASS' if ok else 'FAIL'} (p99 ≤ {TARGET_P99_MS:g} ms and "
            f"≥ {TARGET_RATIO:.2f} × healthz req/s)"
        )


def _wait_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the API did not start")
