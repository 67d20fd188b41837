"""Alert events on ``nm:stream:alert-events``: written in the transaction of the change they
report (one ``alert.created`` per alert, ``alert.delivered`` / ``alert.failed`` when a delivery
run ends), never for a change that did not commit, and never carrying a channel's address or
secret."""

from __future__ import annotations

from typing import Any

import pytest

from core import keys
from core.alerts import AlertStore
from core.events import AlertCreated, AlertDelivered, AlertEvent, AlertFailed, decode
from core.subscriptions import Filter
from notifier.digests import DigestBuilder
from notifier.retry import SCHEDULE_S
from tests.notifier.helpers import DELIVERY, classified, item, stored, webhook_sub, wire
from tests.notifier.receiver import Receiver, Reply

SECRET_URL = "https://hook-user:s3cr3t-token@hooks.example/newsmon?key=k3y"


async def _events(r: Any) -> list[AlertEvent]:
    rows = await r.xrange(keys.STREAM_ALERT_EVENTS)
    events = [decode(fields) for _, fields in rows]
    assert all(isinstance(e, AlertEvent) for e in events)
    return events  # type: ignore[return-value]


async def test_routing_publishes_one_created_event_per_alert(r):
    one = await webhook_sub(r, SECRET_URL)
    two = await webhook_sub(r, "http://127.0.0.1:9/", digest="hourly")
    w = wire(r)
    first, second = item(1, feed="khmertimes"), item(2, feed="vientianetimes")
    await stored(r, first, second)
    event = classified(first, story="story-1")
    await w.worker.handle(event, DELIVERY)
    await w.worker.handle(event, DELIVERY)  # a redelivery: nothing new
    await w.worker.handle(classified(second, story="story-1"), DELIVERY)  # a source added
    alerts = {a.subscription_id: a for a in await AlertStore(r).recent()}
    events = await _events(r)
    assert [type(e) for e in events] == [AlertCreated, AlertCreated]
    by_sub = {e.subscription_id: e for e in events}
    assert set(by_sub) == {one.id, two.id}
    for sub_id, e in by_sub.items():
        assert e.alert_id == alerts[sub_id].id
        assert (e.item_id, e.channel, e.attempts, e.kind) == (first.id, "webhook", 0, "alert")
        assert e.occurred_at == e.created_at == w.clock.now
    assert by_sub[one.id].status == "pending"
    assert by_sub[two.id].status == "queued"
    raw = str(await r.xrange(keys.STREAM_ALERT_EVENTS))
    for secret in ("s3cr3t", "hooks.example", "k3y", "whsec_", one.secrets[0].value):
        assert secret not in raw
    await w.sender.aclose()


@pytest.mark.parametrize("touched", ["seen", "story"])
async def test_an_aborted_transaction_publishes_nothing(r, monkeypatch, touched):
    """Another writer changes a WATCHed key between the reads and EXEC: the MULTI is
    discarded with its event. When the event was routed meanwhile, nothing is published;
    otherwise the retry publishes exactly one ``alert.created``."""
    sub = await webhook_sub(r, "http://127.0.0.1:9/")
    w = wire(r)
    it = item(1)
    await stored(r, it)
    event = classified(it, story="story-1")
    real = w.worker.alerts.existing
    calls = 0

    async def racing(sub_ids: list[str], story_id: str, pipe: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            if touched == "seen":
                await r.set(keys.event_seen(event.event_id), 1)
            else:
                await r.set(keys.story(sub.id, "story-1"), "al_gone")
        return await real(sub_ids, story_id, pipe)

    monkeypatch.setattr(w.worker.alerts, "existing", racing)
    await w.worker.handle(event, DELIVERY)
    alerts = await AlertStore(r).recent()
    events = await _events(r)
    if touched == "seen":
        assert calls == 1 and alerts == [] and events == []
    else:
        assert calls == 2
        [alert] = alerts
        assert [(type(e), e.alert_id) for e in events] == [(AlertCreated, alert.id)]
    await w.sender.aclose()


async def test_delivery_success_publishes_delivered(r):
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url)
        rx.secrets.append(sub.secrets[0].value)
        rx.script += [Reply(500), Reply(200)]
        w = wire(r)
        it = item(1)
        await stored(r, it)
        await w.worker.handle(classified(it), DELIVERY)
        assert await w.deliverer.step() == 1  # 500: a retry, not the end of the run
        assert [type(e) for e in await _events(r)] == [AlertCreated]
        w.clock.advance(SCHEDULE_S[0])
        assert await w.deliverer.step() == 1
        created, delivered = await _events(r)
        assert isinstance(delivered, AlertDelivered)
        assert (delivered.alert_id, delivered.status, delivered.attempts) == (
            created.alert_id,
            "delivered",
            2,
        )
        assert delivered.occurred_at == delivered.updated_at == w.clock.now
        await w.sender.aclose()


async def test_exhausted_retries_publish_failed_once(r):
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url)
        rx.secrets.append(sub.secrets[0].value)
        rx.script += [Reply(500) for _ in range(len(SCHEDULE_S) + 1)]
        w = wire(r)
        it = item(1)
        await stored(r, it)
        await w.worker.handle(classified(it), DELIVERY)
        for delay in SCHEDULE_S:
            assert await w.deliverer.step() == 1
            w.clock.advance(delay)
        assert [type(e) for e in await _events(r)] == [AlertCreated]
        assert await w.deliverer.step() == 1
        created, failed = await _events(r)
        assert isinstance(failed, AlertFailed)
        assert (failed.alert_id, failed.status, failed.attempts) == (
            created.alert_id,
            "failed",
            len(SCHEDULE_S) + 1,
        )
        assert len(await AlertStore(r).dead_letters()) == 1
        await w.sender.aclose()


async def test_a_digest_is_created_and_delivered_like_an_alert(r):
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url, digest="hourly", filter=Filter())
        rx.secrets.append(sub.secrets[0].value)
        w = wire(r)
        its = [item(1), item(2)]
        await stored(r, *its)
        for it in its:
            await w.worker.handle(classified(it), DELIVERY)
        w.clock.advance(3600)
        digest_id = await DigestBuilder(r, clock=w.clock).flush(sub.id)
        assert await w.deliverer.step() == 1
        events = await _events(r)
        assert [type(e) for e in events] == [
            AlertCreated,
            AlertCreated,
            AlertCreated,
            AlertDelivered,
        ]
        created, delivered = events[2:]
        assert created.alert_id == delivered.alert_id == digest_id
        assert (created.kind, created.item_id, created.status) == ("digest", None, "pending")
        await w.sender.aclose()
