"""``/v1/alerts``: list (filters, cursor and ``before`` paging under concurrent inserts), one
alert with every attempt, redeliver; and ``test``/``redeliver`` reaching a real receiver
through the notifier's ``Deliverer`` (queued by the API, sent by the notifier)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from core import keys
from core.alerts import Alert, AlertStatus, AlertStore, Attempt
from core.apikeys import ApiKeys
from core.events import AlertCreated, decode
from core.payloads import ItemPayload
from notifier.channels.webhook import WebhookSender
from notifier.worker import Deliverer
from tests.api.conftest import NOW
from tests.notifier.receiver import Receiver

SUB_A = "sub_000000000000000a"
SUB_B = "sub_000000000000000b"


def _alert(n: int, sub: str = SUB_A, status: AlertStatus = "delivered") -> Alert:
    at = NOW - timedelta(minutes=100 - n)
    return Alert(
        id=f"al_{n:024x}",
        subscription_id=sub,
        story_id=f"story{n}",
        created_at=at,
        updated_at=at,
        status=status,
        item=ItemPayload(id=f"item{n}", feed_id="f1", title=f"item {n}", published=at),
    )


async def _put(r: Any, *alerts: Alert, attempts: int = 0) -> None:
    async with r.pipeline(transaction=True) as pipe:
        for a in alerts:
            AlertStore.queue_create(pipe, a, None)
            for i in range(attempts):
                AlertStore.queue_attempt(
                    pipe,
                    a.id,
                    Attempt(at=a.created_at, channel="webhook", outcome="retry", status=500 + i),
                )
        await pipe.execute()


async def _all_pages(client: httpx.AsyncClient, query: str) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        url = f"/v1/alerts?{query}" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url)).json()
        seen += [a["id"] for a in page["alerts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def test_list_filters_and_pages(client, r):
    alerts = [
        _alert(n, SUB_A if n % 2 else SUB_B, "failed" if n % 3 == 0 else "delivered")
        for n in range(1, 11)
    ]
    await _put(r, *alerts)
    newest_first = [a.id for a in reversed(alerts)]

    first = (await client.get("/v1/alerts?limit=3")).json()
    assert [a["id"] for a in first["alerts"]] == newest_first[:3]
    await _put(
        r, _alert(50, SUB_B)
    )  # newer than every page: never shows up in the pages that follow
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        page = (await client.get(f"/v1/alerts?limit=3&cursor={cursor}")).json()
        rest += [a["id"] for a in page["alerts"]]
        cursor = page["next_cursor"]
    assert rest == newest_first[3:]

    assert await _all_pages(client, f"subscription={SUB_A}&limit=2") == [
        a.id for a in reversed(alerts) if a.subscription_id == SUB_A
    ]
    failed = await _all_pages(client, "status=failed&limit=2")
    assert failed == [a.id for a in reversed(alerts) if a.status == "failed"]
    before = (alerts[4].created_at).isoformat().replace("+00:00", "Z")
    older = (await client.get(f"/v1/alerts?before={before}")).json()["alerts"]
    assert [a["id"] for a in older] == [a.id for a in reversed(alerts[:4])]
    assert (await client.get("/v1/alerts?subscription=sub_00000000000000ff")).json() == {
        "alerts": [],
        "next_cursor": None,
    }


async def test_list_rejects_bad_parameters_naming_them(client):
    cases = [
        ("cursor=%%%", 400, "cursor"),
        ("cursor=eyJ4IjoxfQ", 400, "cursor"),
        ("status=lost", 422, "status"),
        ("limit=0", 422, "limit"),
        ("subscription=nobody", 422, "subscription"),
        ("before=yesterday", 422, "before"),
        ("before=2024-01-01T00:00:00", 422, "before"),
        ("before=2024-01-01T00:00:00Z&cursor=eyJhIjoiYWwiLCJ0IjoxfQ", 422, "before"),
    ]
    for query, status, field in cases:
        resp = await client.get(f"/v1/alerts?{query}")
        assert resp.status_code == status, (query, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in resp.json()["errors"]], (query, resp.json())


async def test_one_alert_with_every_attempt(client, r):
    alert = _alert(1, status="failed")
    await _put(r, alert, attempts=3)
    resp = await client.get(f"/v1/alerts/{alert.id}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "failed" and body["item"]["title"] == "item 1"
    assert [a["status"] for a in body["delivery_attempts"]] == [500, 501, 502]
    assert (await client.get("/v1/alerts/al_000000000000000000000999")).status_code == 404
    assert (await client.get("/v1/alerts/bogus")).status_code == 422
    assert (
        await client.post("/v1/alerts/al_000000000000000000000999/redeliver")
    ).status_code == 404


async def test_redeliver_refuses_unfinished_alerts_and_dead_subscriptions(client, r):
    sub = (
        await client.post(
            "/v1/subscriptions",
            json={"name": "x", "channel": {"kind": "webhook", "url": "https://h.example/x"}},
        )
    ).json()
    pending, queued, done = (
        _alert(1, sub["id"], "pending"),
        _alert(2, sub["id"], "queued"),
        _alert(3, sub["id"], "failed"),
    )
    orphan = _alert(4, "sub_00000000000000ff", "failed")
    await _put(r, pending, queued, done, orphan)
    for alert in (pending, queued, orphan):
        resp = await client.post(f"/v1/alerts/{alert.id}/redeliver")
        assert resp.status_code == 409, (alert.status, resp.text)
    await client.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": False})
    assert (await client.post(f"/v1/alerts/{done.id}/redeliver")).status_code == 409
    await client.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": True})
    ok = await client.post(f"/v1/alerts/{done.id}/redeliver")
    assert ok.status_code == 202, ok.text
    assert await r.zscore(keys.DUE, done.id) == NOW.timestamp()
    again = await client.post(f"/v1/alerts/{done.id}/redeliver")  # now pending
    assert again.status_code == 409


async def test_alert_scopes(client, r):
    alert = _alert(1)
    await _put(r, alert)
    _, reader = await ApiKeys(r).create("reader", ["read"], now=NOW)
    as_reader = {"Authorization": f"Bearer {reader}"}
    assert (await client.get("/v1/alerts")).status_code == 401
    assert (await client.get("/v1/alerts", headers=as_reader)).status_code == 200
    assert (await client.get(f"/v1/alerts/{alert.id}", headers=as_reader)).status_code == 200
    denied = await client.post(f"/v1/alerts/{alert.id}/redeliver", headers=as_reader)
    assert denied.status_code == 403


async def test_test_and_redeliver_reach_a_real_receiver_through_the_notifier(client, r):
    """The API only queues; the notifier's Deliverer sends, signed, to 127.0.0.1."""
    with Receiver([]) as rx:
        created = await client.post(
            "/v1/subscriptions",
            json={"name": "ops", "channel": {"kind": "webhook", "url": rx.url}},
        )
        rx.secrets.append(created.json()["secret"])
        sub_id = created.json()["id"]
        async with WebhookSender(transport=httpx.AsyncHTTPTransport(), timeout_s=5) as sender:
            # The notifier's clock is past the API's NOW: what the API queued is due.
            deliverer = Deliverer(r, webhook=sender, clock=lambda: NOW + timedelta(seconds=1))

            queued = await client.post(f"/v1/subscriptions/{sub_id}/test")
            assert queued.status_code == 202
            alert_id = queued.json()["alert_id"]
            assert rx.requests == []  # nothing was sent by the request itself
            assert await deliverer.step() == 1
            [first] = rx.requests
            assert first.webhook_id == f"msg_{alert_id}"
            assert first.payload["type"] == "alert.created"
            assert first.payload["data"]["item"]["title"] == "newsmon test alert"
            shown = (await client.get(f"/v1/alerts/{alert_id}")).json()
            assert shown["status"] == "delivered"
            assert [a["outcome"] for a in shown["delivery_attempts"]] == ["delivered"]

            resent = await client.post(f"/v1/alerts/{alert_id}/redeliver")
            assert resent.status_code == 202, resent.text
            assert len(rx.requests) == 1
            assert await deliverer.step() == 1
            assert len(rx.requests) == 2
            assert rx.requests[1].webhook_id == first.webhook_id  # the same message
            shown = (await client.get(f"/v1/alerts/{alert_id}")).json()
            assert shown["status"] == "delivered" and shown["attempts"] == 1
            assert [a["status"] for a in shown["delivery_attempts"]] == [200, 200]
            assert await deliverer.step() == 0
        # published as it was stored and as each delivery run ended
        events = [decode(f) for _, f in await r.xrange(keys.STREAM_ALERT_EVENTS)]
        assert [(e.TYPE, getattr(e, "alert_id", None)) for e in events] == [
            ("alert.created", alert_id),
            ("alert.delivered", alert_id),
            ("alert.delivered", alert_id),
        ]
        assert isinstance(events[0], AlertCreated)
        assert (events[0].test, events[0].item_id, events[0].channel) == (True, None, "webhook")
        assert rx.rejected == []
