"""API keys: hashed in Redis, ``read`` and ``admin`` scopes, revocation, open when none."""

from __future__ import annotations

from core.apikeys import APIKEYS, ApiKeys
from tests.api.conftest import NOW


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
