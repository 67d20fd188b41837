"""API keys: hashed in Redis, ``read`` and ``admin`` scopes, revocation, open when none."""

from __future__ import annotations

import pytest

from core.apikeys import APIKEYS, ApiKeys
from tests.api.conftest import NOW, make_item, make_labels


async def test_open_while_no_key_exists(client):
    assert (await client.get("/v1/items")).status_code == 200


async def test_keys_are_stored_hashed_and_scopes_apply(client, r):
    keys = ApiKeys(r)
    _, reader = await keys.create("reader", ["read"], now=NOW)
    admin_key, admin = await keys.create("ops", ["admin"], now=NOW)
    stored = await r.hgetall(APIKEYS)
    assert all(reader not in v and admin not in v for v in stored.values())

    anon = await client.get("/v1/items")
    assert anon.status_code == 401
    assert anon.headers["www-authenticate"].startswith("Bearer")
    assert anon.headers["content-type"] == "application/problem+json"
    bad = await client.get("/v1/items", headers={"Authorization": f"Bearer {reader}x"})
    assert bad.status_code == 401
    garbage = await client.get("/v1/items", headers={"Authorization": "Bearer nope"})
    assert garbage.status_code == 401

    as_reader = {"Authorization": f"Bearer {reader}"}
    as_admin = {"Authorization": f"Bearer {admin}"}
    assert (await client.get("/v1/items", headers=as_reader)).status_code == 200
    assert (await client.get("/v1/feeds", headers=as_reader)).status_code == 200
    feed = {"url": "https://example.org/feed.xml", "name": "Example"}
    denied = await client.post("/v1/feeds", json=feed, headers=as_reader)
    assert denied.status_code == 403
    assert (await client.post("/v1/feeds", json=feed, headers=as_admin)).status_code == 201
    assert (await client.get("/v1/items", headers=as_admin)).status_code == 200  # admin ⊇ read
    # health, readiness and metrics need no key
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200

    assert await keys.revoke(admin_key.id, now=NOW)
    assert not await keys.revoke(admin_key.id, now=NOW)
    assert (await client.get("/v1/items", headers=as_admin)).status_code == 401
    assert sorted(k.name for k in await keys.list()) == ["ops", "reader"]
    assert await keys.active_count() == 1


# GET /v1/items checks its key itself: in the page's own command when one index decides the
# page, before the page's commands otherwise; both must refuse the same way.
@pytest.mark.parametrize(
    "query", ["", "?topic=border_security", "?topic=border_security&country=laos", "?q=patrol"]
)
async def test_item_pages_need_a_key_on_every_query_path(client, r, world, query):
    labels = make_labels("border_security", countries=("laos",))
    await world.add(make_item(1, text="a border patrol"), labels)
    _, reader = await ApiKeys(r).create("reader", ["read"], now=NOW)
    anon = await client.get(f"/v1/items{query}")
    assert anon.status_code == 401
    assert anon.headers["content-type"] == "application/problem+json"
    assert make_item(1).id not in anon.text  # the page read beside the key is not shown
    wrong = await client.get(f"/v1/items{query}", headers={"Authorization": f"Bearer {reader}x"})
    assert wrong.status_code == 401
    ok = await client.get(f"/v1/items{query}", headers={"Authorization": f"Bearer {reader}"})
    assert ok.status_code == 200
    assert [i["id"] for i in ok.json()["items"]] == [make_item(1).id]


async def test_item_pages_survive_a_script_cache_flush(client, r, world):
    await world.add(make_item(1), make_labels("border_security"))
    assert (await client.get("/v1/items")).status_code == 200
    await r.script_flush()  # as after a Redis restart: the page script must be loaded again
    body = (await client.get("/v1/items")).json()
    assert [i["id"] for i in body["items"]] == [make_item(1).id]
