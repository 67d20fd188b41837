"""``GET /v1/items`` answered by the fast path (api/fastlist.py) is the route's answer.

Every request here goes to two apps over the same Redis: the usual one, and one without
the fast path (every page through the FastAPI route). Status, content type and body must
be the same; and the fast path must have answered the pages it can (else these tests would
compare the route with itself).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.fastlist import FastListMiddleware
from core.apikeys import ApiKeys
from tests.api.conftest import NOW, make_item, make_labels


async def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def route_only(settings, r) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(create_app(settings, r, clock=lambda: NOW, fast_list=False)) as c:
        yield c


def _fast(app: Any) -> FastListMiddleware:
    """The app's fast-path middleware (built on the app's first request)."""
    layer = app.middleware_stack
    while not isinstance(layer, FastListMiddleware):
        layer = layer.app
    return layer


@pytest.fixture
async def stored(world):
    for n in range(1, 8):
        countries = ("laos",) if n % 2 else ("cambodia",)
        topic = "border_security" if n % 3 else "disaster_relief"
        labels = make_labels(topic, countries=countries, relevant=n % 2 == 1, score=n / 10)
        await world.add(make_item(n, text=f"a border patrol report number {n}"), labels)
    await world.add(make_item(9, text="not classified yet"))
    return world


PAGES = [
    "",
    "?limit=3",
    "?topic=border_security",
    "?topic=border_security&limit=2",
    "?country=laos&topic=border_security",
    "?relevant=true",
    "?relevant=false&limit=2",
    "?min_score=0.35",
    "?q=patrol",
    "?q=patrol&country=cambodia",
    "?feed=f1&limit=4",
    "?since=2024-05-01T00:00:00Z&until=2030-01-01T00:00:00Z",
    "?topic=nothing_like_this",
    "?evidence=true",
    "?topic=border_security&evidence=true&limit=2",
    "?country=laos&topic=border_security&evidence=1",
    "?q=patrol&evidence=false",
]


@pytest.mark.parametrize("query", PAGES)
async def test_fast_pages_equal_the_routes(app, client, route_only, stored, query):
    fast = await client.get(f"/v1/items{query}")
    slow = await route_only.get(f"/v1/items{query}")
    assert fast.status_code == slow.status_code == 200
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert fast.json() == slow.json()
    assert _fast(app).answered == 1
    cursor = fast.json()["next_cursor"]
    if cursor:  # the next page too
        sep = "&" if query else "?"
        fast = await client.get(f"/v1/items{query}{sep}cursor={cursor}")
        slow = await route_only.get(f"/v1/items{query}{sep}cursor={cursor}")
        assert fast.json() == slow.json()
        assert _fast(app).answered == 2


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("?limit=0", 422, "limit"),
        ("?limit=abc", 422, "limit"),
        ("?topic=Not%20An%20Id", 422, "topic"),
        ("?since=2024-05-01T00:00:00", 422, "since"),
        ("?q=the", 422, "q"),
        ("?evidence=maybe", 422, "evidence"),
        ("?cursor=forged", 400, None),
    ],
)
async def test_bad_requests_get_the_routes_problem(
    app, client, route_only, stored, query, status, field
):
    fast = await client.get(f"/v1/items{query}")
    slow = await route_only.get(f"/v1/items{query}")
    assert fast.status_code == slow.status_code == status
    assert fast.headers["content-type"] == "application/problem+json"
    assert fast.json() == slow.json()
    if field is not None:
        assert field in fast.text
    assert _fast(app).answered == 0


async def test_keys_are_checked_and_refusals_are_the_routes(app, client, r, stored):
    _, token = await ApiKeys(r).create("reader", ["read"], now=NOW)
    for query in ("", "?topic=border_security&country=laos"):
        refused = await client.get(f"/v1/items{query}")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.get(f"/v1/items{query}", headers={"Authorization": "Basic abc"})
        assert wrong.status_code == 401
    assert _fast(app).answered == 0
    ok = await client.get("/v1/items", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert len(ok.json()["items"]) == 8
    assert _fast(app).answered == 1


async def test_fast_pages_are_measured_under_their_route(app, client, stored):
    assert (await client.get("/v1/items?topic=border_security")).status_code == 200
    assert _fast(app).answered == 1
    metrics = (await client.get("/metrics")).text
    assert 'route="/v1/items",status="200"' in metrics
    assert 'route="unmatched"' not in metrics


async def test_other_routes_and_methods_pass_through(app, client, stored):
    item = make_item(1)
    assert (await client.get(f"/v1/items/{item.id}")).status_code == 200
    assert (await client.post("/v1/items")).status_code == 405
    assert _fast(app).answered == 0


@pytest.mark.parametrize("query", ["?limit=0", "?cursor=forged", "?q=the&topic=x"])
async def test_a_refused_key_comes_before_a_bad_parameter(client, r, stored, query):
    await ApiKeys(r).create("reader", ["read"], now=NOW)
    assert (await client.get(f"/v1/items{query}")).status_code == 401
