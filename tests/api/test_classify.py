"""``POST /v1/classify`` (dry run) and ``GET /v1/taxonomy``."""

from __future__ import annotations

from httpx import ASGITransport, AsyncClient

from api.app import create_app
from core import keys
from tests.api.conftest import make_item, make_labels


async def test_dry_run_stores_nothing(client, r):
    resp = await client.post("/v1/classify", json={"title": "Border talks", "text": "..."})
    assert resp.status_code == 200, resp.text
    assert resp.json()["topics"] == ["border_security"]
    assert resp.json()["matches"][0]["label"] == "border_security"
    assert await r.exists(keys.INDEX_ALL, keys.STREAM_CLASSIFIED) == 0
    empty = await client.post("/v1/classify", json={"title": " ", "text": ""})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "title"
    huge = await client.post("/v1/classify", json={"text": "x" * 200_001})
    assert huge.status_code == 422 and huge.json()["errors"][0]["field"] == "text"


async def test_without_a_classifier_it_is_503(settings, r):
    app = create_app(settings, r)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.post("/v1/classify", json={"title": "x"})
        assert resp.status_code == 503
        assert "classifier not available" in resp.json()["detail"]
        assert (await c.get("/v1/taxonomy")).json()["topics"] == []


async def test_taxonomy_counts_items_per_label(client, world):
    await world.add(make_item(1), make_labels("border_security", countries=("laos",)))
    await world.add(make_item(2), make_labels("border_security", "drug_trafficking"))
    body = (await client.get("/v1/taxonomy")).json()
    assert body["topics"] == [
        {"id": "border_security", "items": 2},
        {"id": "drug_trafficking", "items": 1},
        {"id": "terrorism", "items": 0},
    ]
    assert body["countries"] == [{"id": "laos", "items": 1}]
