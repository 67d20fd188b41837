"""The HTTP API under load: filtered item queries beside ``/healthz``, in the same run.

An embedded Redis is filled with N items (100,000; ``--quick``: 10,000) of 1–3 KB of text,
each classified with one to three of 8 topics and carrying evidence like the classifier's,
stored through ``ItemStore`` like the services do. The API runs in a uvicorn server (one
process, the production app, connected, tuned and on the event loop as the runner's api
role is) on 127.0.0.1. A separate client process (a lean asyncio
HTTP/1.1 keep-alive client: httpx's pool would be the bottleneck, encode/httpx#3215) drives
each endpoint over 50 connections in two ways:

- **saturation** (closed loop): every connection sends its next request as soon as the
  last answer arrives, for ``SECONDS``: the most requests/s the server gives.
- **at rate** (open loop): the 50 connections together send requests at one third of
  healthz's saturation rate, on a fixed schedule, for ``PACED`` × ``SECONDS``, and latency
  counts from the scheduled send time (so a stall is not hidden by the client waiting: no
  coordinated omission). The client collects no garbage while the clock runs (its own
  pauses would count against the server), and an idle probe prints any pause of the whole
  machine (≥ 10 ms) seen during the run beside the latencies it may explain.

Each process's CPU per request (API, Redis, client) is printed too: where the time goes.

Endpoints: ``GET /healthz`` (the baseline: no Redis at all), ``GET /v1/items?topic=…``
(one topic index) and ``GET /v1/items?q=…`` (a word index), 50 items a page, and, with no
target, the topic's page with its items' evidence (``&evidence=true``: list pages leave it
out unless asked; it is two thirds of these items' JSON).

Targets: filtered queries reach ≥ 1/3 of healthz's saturation requests/s, and at that rate
their p99 is ≤ 25 ms. (Under saturation every request waits for the 49 others, so p99 there
is ≥ 50 connections ÷ requests/s by Little's law: it measures the queue, not the server; it
is printed too.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing as mp
import random
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn

from api.app import create_app
from bench.polling import cpu_of
from core.connection import make_client
from core.embedded import EmbeddedRedis
from core.models import Item, Labels, Match
from core.settings import Settings
from core.store import ItemStore
from runner.loops import event_loop_for, run_async, tune_gc_for_serving

N_FULL = 100_000
N_QUICK = 10_000
CONCURRENCY = 50
SECONDS = 5.0
# The paced runs last longer: their p99 is a tail of ~1 % of the requests, and over
# 5 s one 30 ms pause of this VM alone delays that many.
PACED = 2  # × SECONDS
STALL = 0.010
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
VOCABULARY = [*WORDS, *(f"w{n}" for n in range(400))]
PATHS = ("/healthz", "/v1/items?topic=topic_3", "/v1/items?q=customs")
# Measured beside them, with no target: a page with its items' evidence (asked for).
EXTRA = ("/v1/items?topic=topic_3&evidence=true",)
FILL_BATCH = 500
TARGET_P99_MS = 25.0
TARGET_RATIO = 1 / 3
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def _item(i: int, rng: random.Random) -> tuple[Item, Labels]:
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(150, 450))]
    text = " ".join(words) + f" story{i % 997}"
    item = Item(
        id=f"{i:016x}",
        feed_id=f"feed-{i % 20}",
        title=f"Item {i} on {rng.choice(WORDS)} and {rng.choice(WORDS)}",
        summary=" ".join(words[:40]),
        text=text,
        url=f"https://example.org/news/{i}",
        outlet="Example News",
        published=T0 + timedelta(minutes=i),
    )
    topics = sorted(set(rng.sample(TOPICS, rng.randint(1, 3))))
    matches = [
        Match(kind="topic", label=t, rule=f"{t}.rule", text=w, field="text", start=n, end=n + 9)
        for n, (t, w) in enumerate((t, rng.choice(WORDS)) for t in topics for _ in range(4))
    ]
    labels = Labels(
        topics=topics,
        countries=["cambodia", "laos"],
        relevant=i % 3 == 0,
        score=round(rng.random(), 4),
        matches=matches,
        rules_version="bench",
    )
    return item, labels


async def _fill(url: str, n: int) -> None:
    client = make_client(url)
    store = ItemStore(client)
    rng = random.Random(7)
    now = datetime.now(UTC)
    sem = asyncio.Semaphore(32)  # within the client's connection pool

    async def classify(item: Item, labels: Labels) -> None:
        async with sem:
            await store.set_labels(item.id, labels, event_id=f"e{item.id}", now=now)

    for start in range(0, n, FILL_BATCH):
        batch = [_item(i, rng) for i in range(start, min(start + FILL_BATCH, n))]
        await store.upsert_many([item for item, _ in batch], now=now)
        await asyncio.gather(*(classify(item, labels) for item, labels in batch))
    await client.aclose()


def _serve(url: str, sock: socket.socket) -> None:
    async def main() -> None:
        client = make_client(url)
        app = create_app(Settings(load_seeds=False), client)
        tune_gc_for_serving()  # as the api role does
        server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, log_level="warning")
        )
        await server.serve(sockets=[sock])

    run_async(main(), event_loop_for(("api",), Settings().event_loop))  # as `newsmon api`


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """One keep-alive request; the status code (the body is read and dropped)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head[9:12])


async def _load(port: int, path: str, seconds: float, rate: float | None) -> Run:
    """``rate`` None: closed loop; else open loop at ``rate`` requests/s in total."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CONCURRENCY)]
    for reader, writer in conns:  # warm up every connection
        await _exchange(reader, writer, request)
    begin = time.perf_counter() + 0.05
    deadline = begin + seconds
    cpu0 = time.process_time()

    async def worker(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        k = 0
        while True:
            if rate is None:
                sent = time.perf_counter()
                if sent >= deadline:
                    return
            else:
                sent = begin + (n + k * CONCURRENCY) / rate  # this request's slot
                if sent >= deadline:
                    return
                wait = sent - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            k += 1
            status = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                errors += 1

    await asyncio.gather(*(worker(n, r, w) for n, (r, w) in enumerate(conns)))
    elapsed = time.perf_counter() - begin
    cpu = time.process_time() - cpu0
    for _, writer in conns:
        writer.close()
    return Run(sorted(latencies), errors, elapsed, {"client": cpu})


def _client(port: int, path: str, seconds: float, rate: float | None, out: mp.Queue) -> None:
    # The client imports the app's modules (``bench.api``), a heap that one full collection
    # takes ~30 ms to walk: the client then sends nothing, and the open loop rightly counts
    # the late sends against the server. Freeze that heap and collect nothing while the
    # clock runs; the load generator's pauses are not the server's latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    out.put(asyncio.run(_load(port, path, seconds, rate)))


@dataclass(frozen=True)
class Run:
    latencies: list[float]  # sorted, seconds
    errors: int
    elapsed: float
    cpu: dict[str, float]  # CPU seconds each process used during the run
    stalls: tuple[float, ...] = ()  # machine stalls an idle probe saw during the run, seconds

    def cpu_us(self, who: str) -> float:
        """CPU µs per request of ``who`` (api, redis, client)."""
        return self.cpu.get(who, 0.0) / max(1, len(self.latencies)) * 1e6

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed

    def ms(self, q: float) -> float:
        return self.latencies[min(len(self.latencies) - 1, int(len(self.latencies) * q))] * 1000


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
            _wait_quiet(redis_server.url)
            _measure(redis_server.url, seconds, redis_server.pid)
        finally:
            redis_server.stop()


def _drive(
    port: int, path: str, seconds: float, rate: float | None, pids: dict[str, int | None]
) -> Run:
    """One load run; the CPU the API and Redis processes used during it is added to the
    client's own (a little more than the run: the client's start and warm-up too)."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    client = ctx.Process(target=_client, args=(port, path, seconds, rate, queue))
    before = {who: cpu_of(pid) for who, pid in pids.items()}
    with _StallProbe() as probe:
        client.start()
        result: Run = queue.get()
        client.join()
    used = {who: cpu_of(pid) - before[who] for who, pid in pids.items()}
    return replace(result, cpu={**result.cpu, **used}, stalls=tuple(probe.stalls))


class _StallProbe:
    """A thread that sleeps 1 ms at a time and records each oversleep of more than
    ``STALL``: a pause of the whole machine (the VM's host, the kernel), not of one of the
    processes under test. Printed beside the latencies so a tail it explains is visible."""

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            time.sleep(0.001)
            over = time.perf_counter() - start
            if over > STALL:
                self.stalls.append(over)

    def __enter__(self) -> _StallProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _measure(url: str, seconds: float, redis_pid: int | None) -> None:
    ctx = mp.get_context("spawn")
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and socket.socket() leaves it 0 — Nagle plus the client's delayed ACK
    # then add 40 ms to every keep-alive response (uvicorn's own host/port bind is fine).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    server = ctx.Process(target=_serve, args=(url, sock), daemon=True)
    server.start()
    try:
        _wait_up(f"http://127.0.0.1:{port}")
        pids = {"api": server.pid, "redis": redis_pid}
        saturated = {path: _drive(port, path, seconds, None, pids) for path in PATHS + EXTRA}
        rate = saturated["/healthz"].rps * TARGET_RATIO
        paced_for = PACED * seconds
        paced = {
            path: _drive(port, path, paced_for, rate, pids)
            for path in PATHS[1:] + EXTRA
            if path in PATHS or saturated[path].rps > rate  # past capacity only a queue grows
        }
    finally:
        server.terminate()
        server.join()
    base = saturated["/healthz"].rps
    print(f"{CONCURRENCY} connections; saturation (closed loop), {seconds:g} s per endpoint")
    print(f"{'endpoint':42} {'req/s':>8} {'vs healthz':>10} {'p50 ms':>8} {'p99 ms':>8} errors")
    for path, r in saturated.items():
        print(f"{path:42} {r.rps:8.0f} {r.rps / base:10.2f} {r.ms(0.5):8.2f} {r.ms(0.99):8.2f} "
              f"{r.errors}")  # fmt: skip
    print("CPU µs per request at saturation (where the time goes; the 2 cores are shared):")
    print(f"{'endpoint':42} {'api':>8} {'redis':>8} {'client':>8}")
    for path, r in saturated.items():
        print(f"{path:42} {r.cpu_us('api'):8.0f} {r.cpu_us('redis'):8.0f} "
              f"{r.cpu_us('client'):8.0f}")  # fmt: skip
    print(
        f"at rate (open loop): {rate:.0f} req/s = {TARGET_RATIO:.2f} × healthz's saturation, "
        f"{PACED * seconds:g} s per endpoint"
    )
    print(f"{'endpoint':42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} errors  machine stalls")
    for path, r in paced.items():
        stalls = ", ".join(f"{s * 1000:.0f}" for s in r.stalls[:5]) + " ms" if r.stalls else "-"
        print(f"{path:42} {r.rps:8.0f} {r.ms(0.5):8.2f} {r.ms(0.99):8.2f} {r.errors:6}  {stalls}")
    for path in EXTRA:
        if path not in paced:
            print(f"{path:42} not paced: it saturates at {saturated[path].rps:.0f} req/s")
    for path in PATHS[1:]:
        ok = (
            saturated[path].rps >= TARGET_RATIO * base
            and paced[path].ms(0.99) <= TARGET_P99_MS
            and not saturated[path].errors + paced[path].errors
        )
        print(
            f"{path}: {'PASS' if ok else 'FAIL'} (≥ {TARGET_RATIO:.2f} × healthz req/s, and "
            f"p99 ≤ {TARGET_P99_MS:g} ms at that rate)"
        )


def _wait_quiet(url: str) -> None:
    """Save now, and wait out that save and any AOF rewrite the fill set off: a forked child
    writing the whole dataset would share the cores with the run (and with no changes left
    unsaved, the ``save`` rules start none during it)."""
    import redis

    client = redis.Redis.from_url(url)
    started = time.perf_counter()
    with contextlib.suppress(redis.ResponseError):  # "already in progress"
        client.bgsave(schedule=True)
    deadline = started + 600
    busy = ("aof_rewrite_in_progress", "rdb_bgsave_in_progress", "aof_rewrite_scheduled")
    try:
        while time.perf_counter() < deadline:
            info = client.info("persistence")
            if not any(int(info.get(k, 0)) for k in busy):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("the embedded Redis is still saving after 10 minutes")
    finally:
        client.close()
    waited = time.perf_counter() - started
    if waited > 1:
        print(f"waited {waited:.0f} s for Redis's background save/rewrite to finish")


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
