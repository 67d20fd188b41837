"""``/healthz``, ``/readyz`` (Redis, lag and dead-letter bounds) and ``/metrics``."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from core import keys
from core.bus import ensure_group
from core.settings import Settings
from tests.api.conftest import make_item, make_labels


async def test_healthz(client):
    resp = await client.get("/healthz")
    assert resp.json() == {"status": "ok", "redis_version": None}


async def test_readyz_checks_lag_and_dead_letters(client, r, world):
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "ready"
    await ensure_group(r, keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER)
    await world.add(make_item(1), make_labels("border_security"))
    body = (await client.get("/readyz")).json()
    lag = {c["name"]: c for c in body["checks"]}[f"lag:{keys.STREAM_CLASSIFIED}:notifier"]
    assert lag["value"] == 1


async def test_readyz_fails_past_its_bounds(r, world):
    from httpx import ASGITransport, AsyncClient

    settings = Settings(load_seeds=False)

    class Tight:  # the two settings core.settings does not declare yet
        ready_max_lag = 0
        ready_max_dead_letters = 0

        def __getattr__(self, name):
            return getattr(settings, name)

    app = create_app(Tight(), r)
    await ensure_group(r, keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER)
    await world.add(make_item(1), make_labels("border_security"))
    await r.xadd(keys.dead_letter(keys.STREAM_ITEMS), {"error": "x"})
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.get("/readyz")
    assert resp.status_code == 503
    failing = {c["name"] for c in resp.json()["checks"] if not c["ok"]}
    assert f"dead:{keys.STREAM_ITEMS}" in failing
    assert f"lag:{keys.STREAM_CLASSIFIED}:notifier" in failing


async def test_metrics_expose_pipeline_and_latency(client, r, world):
    await world.add(make_item(1), make_labels("border_security"))
    await r.hset(keys.FEEDS, "a", "{}")
    await r.set(keys.feed_state_key("a"), '{"consecutive_failures": 2}')
    await client.get("/v1/items?topic=border_security")
    text = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {
        f: families[f].samples[0].value for f in ("newsmon_items_ingested", "newsmon_feeds_broken")
    }
    assert value == {"newsmon_items_ingested": 1, "newsmon_feeds_broken": 1}
    routes = {
        s.labels.get("route") for s in families["newsmon_http_request_duration_seconds"].samples
    }
    assert "/v1/items" in routes


async def test_an_unreachable_store_is_a_503_with_retry_after(settings):
    """A Redis that refuses connections: the request was fine, so 503, not 500 (after the
    client's retries, ~4 s: one path only)."""
    from httpx import ASGITransport, AsyncClient

    from core.connection import make_client

    down = make_client("redis://127.0.0.1:1/0")  # nothing listens on port 1
    app = create_app(settings, down, fast_list=False)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            resp = await c.get("/v1/items?topic=border_security")
            assert resp.status_code == 503, resp.text
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.headers["retry-after"] == "2"
            assert resp.json()["title"] == "Store unavailable"
    finally:
        await down.aclose()


async def test_a_busy_pool_past_its_wait_is_a_503(settings, redis_url, r):
    from httpx import ASGITransport, AsyncClient

    from core.connection import make_client

    busy = make_client(redis_url, max_connections=1)
    pool: Any = busy.connection_pool
    pool.wait_s = 0.05
    app = create_app(settings, busy, fast_list=False)
    held = await pool.get_connection()
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            resp = await c.get("/v1/items/0000000000000001")
            assert resp.status_code == 503, resp.text
            assert "Redis" in resp.json()["detail"]
            await pool.release(held)
            held = None
            assert (await c.get("/v1/items/0000000000000001")).status_code == 404
    finally:
        if held is not None:
            await pool.release(held)
        await busy.aclose()
