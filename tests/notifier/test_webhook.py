"""Webhook delivery against a real receiver on 127.0.0.1 that verifies every request with the
``standardwebhooks`` package; scripted failures on a controllable clock."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from core import keys
from core.alerts import AlertStore
from core.subscriptions import SubscriptionStore
from notifier.channels.webhook import sign
from notifier.retry import SCHEDULE_S
from tests.notifier.helpers import DELIVERY, classified, item, stored, webhook_sub, wire
from tests.notifier.receiver import Receiver, Reply


def test_signature_matches_the_reference_implementation():
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    ours = sign(secret, "msg_1", int(when.timestamp()), b'{"a":1}')
    assert ours == Webhook(secret).sign("msg_1", when, '{"a":1}')


@pytest.fixture
async def setup(r):
    """A receiver, a subscription to it, a wired notifier and one routed alert."""
    holder: dict[str, Any] = {}
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url)
        rx.secrets.append(sub.secrets[0].value)
        w = wire(r, timeout_s=0.5)
        it = item(1)
        await stored(r, it)
        await w.worker.handle(classified(it), DELIVERY)
        [alert] = await AlertStore(r).recent()
        holder.update(rx=rx, sub=sub, w=w, alert=alert, store=AlertStore(r))
        yield holder
        await w.sender.aclose()


async def _attempt(s: dict[str, Any]) -> Any:
    assert await s["w"].deliverer.step() == 1
    return await s["store"].get(s["alert"].id)


async def test_delivered_payload_is_typed_signed_and_recorded(setup):
    s = setup
    alert = await _attempt(s)
    assert alert.status == "delivered"
    [req] = s["rx"].requests
    assert req.webhook_id == f"msg_{alert.id}"
    body = req.payload
    assert body["type"] == "alert.created" and body["version"] == 1
    data = body["data"]
    assert data["item"]["title"].startswith("Cambodia and Laos")
    assert data["labels"]["topics"] == ["border_security"]
    assert data["evidence"][0]["rule"] == "border_security-1"
    assert data["story"]["sources"][0]["item_id"] == "item000000000001"
    [att] = await s["store"].attempts(alert.id)
    assert (att.outcome, att.status, att.error) == ("delivered", 200, None)
    assert att.latency_ms > 0
    assert await s["w"].deliverer.step() == 0  # nothing left due


async def test_500_then_503_retry_after_then_success_keeps_the_webhook_id(setup):
    s = setup
    rx, clock = s["rx"], s["w"].clock
    rx.script += [Reply(500), Reply(503, {"retry-after": "120"}), Reply(200)]
    alert = await _attempt(s)
    assert alert.status == "pending" and alert.attempts == 1
    # rand() = 0.5 → no jitter: the first retry is 5 s later
    assert alert.next_attempt_at == clock.now + timedelta(seconds=SCHEDULE_S[0])
    assert await s["w"].deliverer.step() == 0  # not due yet
    clock.advance(5)
    alert = await _attempt(s)
    assert alert.next_attempt_at == clock.now + timedelta(seconds=120)  # Retry-After honoured
    clock.advance(119)
    assert await s["w"].deliverer.step() == 0
    clock.advance(1)
    alert = await _attempt(s)
    assert alert.status == "delivered" and alert.attempts == 3
    assert len(rx.requests) == 3 and len(rx.unique_ids()) == 1
    statuses = [a.status for a in await s["store"].attempts(alert.id)]
    assert statuses == [500, 503, 200]


async def test_exhausted_retries_fail_and_dead_letter(setup):
    s = setup
    s["rx"].script += [Reply(500) for _ in range(len(SCHEDULE_S) + 1)]
    for delay in SCHEDULE_S:
        alert = await _attempt(s)
        assert alert.status == "pending"
        s["w"].clock.advance(delay)
    alert = await _attempt(s)
    assert alert.status == "failed" and alert.attempts == len(SCHEDULE_S) + 1
    assert "gave up after 8 attempts" in alert.last_error
    [(_, dead)] = await s["store"].dead_letters()
    assert dead["alert_id"] == alert.id
    assert await s["store"].due() == {}


async def test_410_disables_the_subscription(setup):
    s = setup
    s["rx"].script.append(Reply(410))
    alert = await _attempt(s)
    assert alert.status == "failed"
    sub = await SubscriptionStore(s["w"].worker.redis).get(s["sub"].id)
    assert not sub.enabled and "410" in sub.disabled_reason


async def test_301_is_a_failure_and_is_not_followed(setup):
    s = setup
    s["rx"].script.append(Reply(301, {"location": "http://127.0.0.1:9/elsewhere"}))
    alert = await _attempt(s)
    assert alert.status == "pending" and alert.attempts == 1
    assert "not followed" in alert.last_error
    assert len(s["rx"].requests) == 1


async def test_a_stall_beyond_the_timeout_is_a_retry(setup):
    s = setup
    s["rx"].script.append(Reply(200, hold=threading.Event()))
    alert = await _attempt(s)
    assert alert.status == "pending"
    [att] = await s["store"].attempts(alert.id)
    assert att.status is None and "0.5 s" in att.error


async def test_rotation_sends_both_signatures(setup, r):
    s = setup
    subs = SubscriptionStore(r)
    new = await subs.rotate_secret(s["sub"].id, s["w"].clock.now)
    s["rx"].secrets.append(new)
    await _attempt(s)
    [req] = s["rx"].requests
    assert req.verified_with == (0, 1)  # the old and the new secret both verify
    assert len(req.headers["webhook-signature"].split(" ")) == 2


async def test_redelivered_event_creates_no_second_alert(setup, r):
    s = setup
    event_alerts = await r.zcard(keys.ALERTS)
    await s["w"].worker.handle(classified(item(1)), DELIVERY)  # a new event, same item
    assert await r.zcard(keys.ALERTS) == event_alerts
    assert json.loads(await r.hget(keys.alert(s["alert"].id), "data"))["sources"][0]


async def test_the_ssrf_guard_refuses_a_private_webhook_at_send_time(r):
    """With the guarded transport production uses (to move into core), a webhook that
    resolves to loopback is refused before any byte leaves, and never retried."""
    from core.http import GuardedBackend, GuardedTransport
    from notifier.channels.webhook import WebhookSender
    from notifier.worker import Deliverer

    with Receiver([]) as rx:
        await webhook_sub(r, rx.url)
        w = wire(r)
        guarded = WebhookSender(transport=GuardedTransport(GuardedBackend()))
        deliverer = Deliverer(r, webhook=guarded, clock=w.clock)
        it = item(1)
        await stored(r, it)
        await w.worker.handle(classified(it), DELIVERY)
        assert await deliverer.step() == 1
        [alert] = await AlertStore(r).recent()
        assert alert.status == "failed" and "loopback" in alert.last_error
        assert rx.requests == [] and rx.rejected == []
        await guarded.aclose()
        await w.sender.aclose()
