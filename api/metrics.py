"""Prometheus metrics: request latency (measured here) and the pipeline's state (read from
Redis at scrape time).

Request latency is a histogram per method, route template and status, kept in the app's own
registry (two apps in one process never share one). Pipeline figures (items ingested and
classified, alerts delivered and failed, stream lag, dead letters, broken feeds) are read
from Redis on each scrape into a fresh registry, so they are never stale and never
double-counted across API processes.

Owns: metric names and the latency middleware. Must not: change anything in Redis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Fast API answers are sub-millisecond; SSE streams are excluded (they last for minutes).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STREAMING_ROUTES = frozenset({"/v1/stream"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "newsmon_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ("method", "route", "status"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.sse_open = 0  # open /v1/stream connections (the stream route's limit reads it)
        self.sse_clients = Gauge(
            "newsmon_sse_clients", "Open /v1/stream connections.", registry=self.registry
        )
        self.sse_clients.set_function(lambda: self.sse_open)


class LatencyMiddleware:
    """Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if route not in STREAMING_ROUTES:
                self.metrics.latency.labels(scope["method"], route, str(status)).observe(
                    time.perf_counter() - start
                )


@dataclass
class Snapshot:
    """The pipeline's figures, read from Redis (see ``api.routers.health``)."""

    stats: dict[str, int] = field(default_factory=dict)
    lag: dict[tuple[str, str], int] = field(default_factory=dict)  # (stream, group) → entries
    dead: dict[str, int] = field(default_factory=dict)  # stream → dead-lettered entries
    feeds: int = 0
    broken_feeds: int = 0
    items: int = 0


class _SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Any:
        s = self.snap
        counters = {
            "items_ingested": "Items accepted and stored.",
            "items_updated": "Stored items whose content changed.",
            "items_classified": "Classifications applied.",
            "alerts_delivered": "Alerts delivered.",
            "alerts_failed": "Alert deliveries that failed.",
        }
        for name, doc in counters.items():
            yield CounterMetricFamily(f"newsmon_{name}", doc, value=s.stats.get(name, 0))
        items = GaugeMetricFamily("newsmon_items_stored", "Items in the store.", value=s.items)
        yield items
        lag = GaugeMetricFamily(
            "newsmon_stream_lag", "Entries not yet read by a group.", labels=("stream", "group")
        )
        for (stream, group), n in sorted(s.lag.items()):
            lag.add_metric((stream, group), n)
        yield lag
        dead = GaugeMetricFamily(
            "newsmon_dead_letters", "Entries in a dead-letter stream.", labels=("stream",)
        )
        for stream, n in sorted(s.dead.items()):
            dead.add_metric((stream,), n)
        yield dead
        yield GaugeMetricFamily("newsmon_feeds", "Feeds defined.", value=s.feeds)
        yield GaugeMetricFamily(
            "newsmon_feeds_broken",
            "Feeds whose last poll failed, or that are gone (410).",
            value=s.broken_feeds,
        )


def render(metrics: Metrics, snap: Snapshot) -> bytes:
    """The exposition text: the app's own metrics, then the snapshot's."""
    fresh = CollectorRegistry(auto_describe=False)
    fresh.register(_SnapshotCollector(snap))
    return generate_latest(metrics.registry) + generate_latest(fresh)
