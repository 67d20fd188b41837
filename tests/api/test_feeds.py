"""``/v1/feeds``: add, list with health, change, remove, poll now (a due entry, not a fetch)."""

from __future__ import annotations

import json

from core import keys
from tests.api.conftest import NOW


async def test_feed_lifecycle(client, r):
    resp = await client.post(
        "/v1/feeds",
        json={
            "url": "https://www.khmertimeskh.com/feed/",
            "name": "Khmer Times",
            "interval_s": 1800,
        },
    )
    assert resp.status_code == 201, resp.text
    feed = resp.json()
    assert feed["id"] == "khmer-times"
    assert resp.headers["location"] == "/v1/feeds/khmer-times"
    assert feed["health"]["next_check_reason"] == "new feed"
    # the ingestor's exact shape
    assert json.loads(await r.hget(keys.FEEDS, "khmer-times")) == {
        "url": "https://www.khmertimeskh.com/feed/",
        "id": "khmer-times",
        "name": "Khmer Times",
        "interval_s": 1800,
        "fetch_full_text": False,
        "enabled": True,
    }
    assert await r.zscore(keys.FEEDS_DUE, "khmer-times") == NOW.timestamp()

    dup = await client.post("/v1/feeds", json={"url": "https://x.org/f", "id": "khmer-times"})
    assert dup.status_code == 409

    # health as the ingestor records it
    state = json.loads(await r.get(keys.feed_state_key("khmer-times")))
    state.update(consecutive_failures=3, last_error="HTTP 500", next_check_reason="backoff 4x")
    await r.set(keys.feed_state_key("khmer-times"), json.dumps(state))
    listed = (await client.get("/v1/feeds")).json()["feeds"]
    assert [f["id"] for f in listed] == ["khmer-times"]
    assert listed[0]["health"]["consecutive_failures"] == 3
    assert listed[0]["health"]["last_error"] == "HTTP 500"

    patched = await client.patch("/v1/feeds/khmer-times", json={"enabled": False})
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert patched.json()["health"]["consecutive_failures"] == 3  # same URL: state kept
    moved = await client.patch("/v1/feeds/khmer-times", json={"url": "https://kt.example/rss"})
    assert moved.json()["health"]["consecutive_failures"] == 0  # new URL: state afresh

    await r.zadd(keys.FEEDS_DUE, {"khmer-times": NOW.timestamp() + 3600})
    polled = await client.post("/v1/feeds/khmer-times/poll")
    assert polled.status_code == 202
    assert await r.zscore(keys.FEEDS_DUE, "khmer-times") == NOW.timestamp()

    assert (await client.delete("/v1/feeds/khmer-times")).status_code == 204
    assert (await client.get("/v1/feeds/khmer-times")).status_code == 404
    assert (await client.delete("/v1/feeds/khmer-times")).status_code == 404
    assert (await client.post("/v1/feeds/khmer-times/poll")).status_code == 404
    assert await r.exists(keys.feed_state_key("khmer-times")) == 0


async def test_gone_feed_is_not_polled(client, r):
    await client.post("/v1/feeds", json={"url": "https://x.org/f", "name": "X"})
    await r.zrem(keys.FEEDS_DUE, "x")
    assert (await client.post("/v1/feeds/x/poll")).status_code == 409


async def test_bad_feeds_name_the_field(client):
    cases = [
        ({"url": "ftp://x.org/f"}, "url"),
        ({"url": "https://x.org/f", "interval_s": 10}, "interval_s"),
        ({"url": "https://x.org/f", "id": "Bad Id"}, "id"),
        ({"url": "https://x.org/f", "colour": "red"}, "colour"),
        ({}, "url"),
    ]
    for body, field in cases:
        resp = await client.post("/v1/feeds", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert field in [e["field"] for e in resp.json()["errors"]], resp.json()
    resp = await client.patch("/v1/feeds/nope", json={"interval_s": 5})
    assert resp.status_code == 422
