"""``/v1/subscriptions``: add (secret shown once), list, change, remove, rotate the secret,
queue a test alert (a due entry, not a send), scopes, validation, and one-click unsubscribe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from core import keys
from core.apikeys import ApiKeys
from core.subscriptions import SubscriptionStore
from notifier.channels.email import SmtpConfig, unsubscribe_url
from tests.api.conftest import NOW

HOOK = {"kind": "webhook", "url": "https://hooks.example.org/newsmon"}
MAIL = {"kind": "email", "recipients": ["analyst@example.org"]}


async def _add(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/subscriptions", json={"name": "desk", "channel": HOOK, **body})
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


async def test_subscription_lifecycle(client, r):
    created = await _add(
        client,
        filter={"topics": ["border_security"], "relevant_only": True},
        rate_limit_per_hour=10,
    )
    sub_id = created["id"]
    assert created["secret"].startswith("whsec_")
    assert created["mode"] == "instant" and created["enabled"] is True
    assert created["filter"]["topics"] == ["border_security"]
    stored = await SubscriptionStore(r).get(sub_id)
    assert stored is not None and stored.secrets[0].value == created["secret"]
    assert stored.filter.relevant_only and stored.rate_limit_per_hour == 10

    listed = await client.get("/v1/subscriptions")
    one = await client.get(f"/v1/subscriptions/{sub_id}")
    for resp in (listed, one):  # the secret and the unsubscribe token are never shown again
        assert resp.status_code == 200
        assert "whsec_" not in resp.text and stored.unsubscribe_token not in resp.text
    assert [s["id"] for s in listed.json()["subscriptions"]] == [sub_id]
    assert one.json()["secrets"] == [{"created_at": "2024-06-01T00:00:00Z", "expires_at": None}]

    patched = await client.patch(
        f"/v1/subscriptions/{sub_id}",
        json={"enabled": False, "digest": "daily@08:00/Asia/Phnom_Penh", "name": "night desk"},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["enabled"], body["disabled_reason"]) == (False, "disabled through the API")
    assert body["mode"] == body["digest"] == "daily@08:00/Asia/Phnom_Penh"
    assert body["rate_limit_per_hour"] == 10  # untouched
    back = await client.patch(
        f"/v1/subscriptions/{sub_id}",
        json={"enabled": True, "digest": None, "rate_limit_per_hour": None, "channel": MAIL},
    )
    body = back.json()
    assert (body["enabled"], body["disabled_reason"], body["mode"]) == (True, None, "instant")
    assert body["rate_limit_per_hour"] is None and body["channel"] == MAIL
    after = await SubscriptionStore(r).get(sub_id)
    assert after is not None and after.secrets == stored.secrets  # kept across changes

    assert (await client.delete(f"/v1/subscriptions/{sub_id}")).status_code == 204
    for method, path in [
        ("GET", ""),
        ("DELETE", ""),
        ("PATCH", ""),
        ("POST", "/test"),
        ("POST", "/rotate-secret"),
    ]:
        kw = {"json": {"enabled": True}} if method == "PATCH" else {}
        resp = await client.request(method, f"/v1/subscriptions/{sub_id}{path}", **kw)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"


async def test_given_secret_and_email_channel(client):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    created = await _add(client, channel=MAIL, secret=secret, digest="hourly")
    assert created["secret"] == secret and created["mode"] == "hourly"
    assert created["channel"] == MAIL


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": {"kind": "webhook", "url": "ftp://x.org/h"}}, "url"),
        ({"channel": {"kind": "webhook", "url": "https://x.org:99999/"}}, "url"),
        ({"channel": {"kind": "email", "recipients": []}}, "recipients"),
        ({"channel": {"kind": "email", "recipients": ["not-an-address"]}}, "recipients"),
        ({"channel": {"kind": "pigeon"}}, "channel"),
        ({"digest": "weekly"}, "digest"),
        ({"digest": "daily@08:00/Mars/Olympus"}, "digest"),
        ({"secret": "hunter2"}, "secret"),
        ({"filter": {"min_score": 2}}, "min_score"),
        ({"filter": {"colour": "red"}}, "colour"),
        ({"rate_limit_per_hour": 0}, "rate_limit_per_hour"),
        ({"name": "  "}, "name"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_subscriptions_name_the_field(client, body, field):
    resp = await client.post("/v1/subscriptions", json={"name": "x", "channel": HOOK, **body})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert any(field in e["field"] for e in resp.json()["errors"]), resp.json()


async def test_bad_ids_and_patches_are_422(client):
    assert (await client.get("/v1/subscriptions/nope")).status_code == 422
    created = await _add(client)
    resp = await client.patch(f"/v1/subscriptions/{created['id']}", json={"digest": "sometimes"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "digest"
    resp = await client.post(
        f"/v1/subscriptions/{created['id']}/rotate-secret", json={"overlap_s": -1}
    )
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "overlap_s"


async def test_rotate_secret_shows_the_new_one_once_and_keeps_the_old_one_overlapping(client, r):
    created = await _add(client)
    sub_id = created["id"]
    resp = await client.post(f"/v1/subscriptions/{sub_id}/rotate-secret", json={"overlap_s": 3600})
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["previous_valid_until"] == "2024-06-01T01:00:00Z"
    sub = await SubscriptionStore(r).get(sub_id)
    assert sub is not None
    assert sub.signing_secrets(NOW) == [rotated["secret"], created["secret"]]
    assert sub.signing_secrets(NOW + timedelta(hours=2)) == [rotated["secret"]]
    shown = await client.get(f"/v1/subscriptions/{sub_id}")
    assert "whsec_" not in shown.text and len(shown.json()["secrets"]) == 2
    # no body: the default overlap (24 h)
    again = await client.post(f"/v1/subscriptions/{sub_id}/rotate-secret")
    assert again.status_code == 200 and again.json()["previous_valid_until"] is not None


async def test_test_alert_is_queued_for_the_notifier_not_sent(client, r):
    created = await _add(client)
    resp = await client.post(f"/v1/subscriptions/{created['id']}/test")
    assert resp.status_code == 202, resp.text
    queued = resp.json()
    assert resp.headers["location"] == f"/v1/alerts/{queued['alert_id']}"
    assert await r.zscore(keys.DUE, queued["alert_id"]) == NOW.timestamp()
    alert = (await client.get(f"/v1/alerts/{queued['alert_id']}")).json()
    assert (alert["status"], alert["test"], alert["delivery_attempts"]) == ("pending", True, [])
    assert alert["item"]["title"] == "newsmon test alert"
    # a test alert takes no story slot: real items of no story are routed as before
    assert await r.keys(keys.story(created["id"], "*")) == []

    await client.patch(f"/v1/subscriptions/{created['id']}", json={"enabled": False})
    refused = await client.post(f"/v1/subscriptions/{created['id']}/test")
    assert refused.status_code == 409


async def test_scopes(client, r):
    created = await _add(client)  # while no key exists the API is open
    sub_id = created["id"]
    keys_ = ApiKeys(r)
    _, reader = await keys_.create("reader", ["read"], now=NOW)
    _, admin = await keys_.create("ops", ["admin"], now=NOW)
    as_reader = {"Authorization": f"Bearer {reader}"}
    as_admin = {"Authorization": f"Bearer {admin}"}
    writes = [
        ("POST", "/v1/subscriptions", {"name": "x", "channel": HOOK}),
        ("PATCH", f"/v1/subscriptions/{sub_id}", {"name": "y"}),
        ("POST", f"/v1/subscriptions/{sub_id}/test", None),
        ("POST", f"/v1/subscriptions/{sub_id}/rotate-secret", None),
        ("DELETE", f"/v1/subscriptions/{sub_id}", None),
    ]
    reads = [("GET", "/v1/subscriptions", None), ("GET", f"/v1/subscriptions/{sub_id}", None)]
    for method, path, body in reads + writes:
        anon = await client.request(method, path, json=body)
        assert anon.status_code == 401, (method, path)
    for method, path, body in reads:
        assert (await client.request(method, path, json=body, headers=as_reader)).status_code == 200
    for method, path, body in writes:
        denied = await client.request(method, path, json=body, headers=as_reader)
        assert denied.status_code == 403, (method, path)
        allowed = await client.request(method, path, json=body, headers=as_admin)
        assert allowed.status_code in (200, 201, 202, 204), (method, path, allowed.text)


# -- one-click unsubscribe (RFC 8058) ---------------------------------------------------------
async def test_one_click_unsubscribe(client, r):
    created = await _add(client, channel=MAIL)
    sub_id = created["id"]
    sub = await SubscriptionStore(r).get(sub_id)
    assert sub is not None
    # the exact link the notifier puts in List-Unsubscribe
    link = urlsplit(unsubscribe_url(SmtpConfig(host="mail.invalid"), sub))
    url = f"{link.path}?{link.query}"
    await ApiKeys(r).create("ops", ["admin"], now=NOW)  # keys exist: the link needs none

    shown = await client.get(url)
    assert shown.status_code == 200
    assert shown.json() == {
        "subscription_id": sub_id,
        "name": "desk",
        "enabled": True,
        "method": "POST",
        "body": "List-Unsubscribe=One-Click",
    }
    page = await client.get(url, headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert (await SubscriptionStore(r).get(sub_id)).enabled  # a GET changes nothing

    form = {"content-type": "application/x-www-form-urlencoded"}
    wrong = await client.post(
        f"{link.path}?token=x{sub.unsubscribe_token}",
        content="List-Unsubscribe=One-Click",
        headers=form,
    )
    assert wrong.status_code == 404
    assert (await client.get(f"{link.path}?token=nope")).status_code == 404
    empty = await client.post(url, content="", headers=form)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "List-Unsubscribe"
    no_token = await client.post(link.path, content="List-Unsubscribe=One-Click", headers=form)
    assert no_token.status_code == 422 and no_token.json()["errors"][0]["field"] == "token"

    done = await client.post(url, content="List-Unsubscribe=One-Click", headers=form)
    assert done.status_code == 200, done.text
    assert done.json() == {"subscription_id": sub_id, "enabled": False}
    after = await SubscriptionStore(r).get(sub_id)
    assert after is not None
    assert (after.enabled, after.disabled_reason) == (False, "unsubscribed (one-click)")
    again = await client.post(url, content="List-Unsubscribe=One-Click", headers=form)
    assert again.status_code == 200  # idempotent


async def test_one_click_unsubscribe_multipart(client, r):
    created = await _add(client, channel=MAIL)
    sub = await SubscriptionStore(r).get(created["id"])
    assert sub is not None
    boundary = "xYzZy"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    )
    resp = await client.post(
        f"/v1/subscriptions/{sub.id}/unsubscribe?token={sub.unsubscribe_token}",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status_code == 200, resp.text
    assert not (await SubscriptionStore(r).get(sub.id)).enabled
