"""Digests: queued matches become one delivery, never an empty one; the rate limit folds the
excess into the next digest; daily digests fire at the local time of their zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.alerts import AlertStore
from core.subscriptions import Filter, SubscriptionStore
from notifier.digests import DigestBuilder, DigestScheduler, trigger_for
from tests.notifier.helpers import DELIVERY, classified, item, stored, webhook_sub, wire
from tests.notifier.receiver import Receiver


async def _route(r: Any, w: Any, n: int) -> None:
    its = [item(i) for i in range(n)]
    await stored(r, *its)
    for it in its:
        await w.worker.handle(classified(it), DELIVERY)


async def test_hourly_digest_bundles_queued_alerts_and_is_never_empty(r):
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url, digest="hourly")
        rx.secrets.append(sub.secrets[0].value)
        w = wire(r)
        await _route(r, w, 3)
        assert await w.deliverer.step() == 0  # digest mode: nothing instant
        assert {a.status for a in await AlertStore(r).recent()} == {"queued"}
        builder = DigestBuilder(r, clock=w.clock)
        w.clock.advance(3600)
        digest_id = await builder.flush(sub.id)
        assert digest_id is not None
        assert await builder.flush(sub.id) is None  # nothing new: no empty digest
        assert await w.deliverer.step() == 1
        [req] = rx.requests
        assert req.payload["type"] == "digest.created"
        assert len(req.payload["data"]["alerts"]) == 3
        statuses = sorted(a.status for a in await AlertStore(r).recent())
        assert statuses == ["delivered", "digested", "digested", "digested"]
        await w.sender.aclose()


async def test_rate_limit_folds_the_excess_into_the_next_digest(r):
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url, rate_limit_per_hour=1, filter=Filter())
        rx.secrets.append(sub.secrets[0].value)
        w = wire(r)
        await _route(r, w, 3)
        assert await w.deliverer.step() == 1  # one instant alert within the limit
        alerts = await AlertStore(r).recent()
        assert sorted((a.status, a.folded) for a in alerts) == [
            ("delivered", False),
            ("queued", True),
            ("queued", True),
        ]
        w.clock.advance(10)
        assert await DigestBuilder(r, clock=w.clock).flush(sub.id) is not None
        assert await w.deliverer.step() == 1
        assert [q.payload["type"] for q in rx.requests] == ["alert.created", "digest.created"]
        assert len(rx.requests[1].payload["data"]["alerts"]) == 2
        await w.sender.aclose()


async def test_triggers_and_scheduler_jobs(r):
    daily = await webhook_sub(r, "https://a.example/h", digest="daily@08:00/Asia/Phnom_Penh")
    hourly = await webhook_sub(r, "https://a.example/h", digest="hourly")
    limited = await webhook_sub(r, "https://a.example/h", rate_limit_per_hour=5)
    instant = await webhook_sub(r, "https://a.example/h")
    now = datetime(2025, 3, 1, 2, 30, tzinfo=UTC)
    fire = trigger_for(daily).get_next_fire_time(None, now)
    assert fire.astimezone(UTC) == datetime(2025, 3, 2, 1, 0, tzinfo=UTC)  # 08:00 at UTC+7
    fire = trigger_for(hourly).get_next_fire_time(None, now)
    assert fire.astimezone(UTC) == datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
    assert trigger_for(instant) is None
    sched = DigestScheduler(DigestBuilder(r, clock=lambda: now))
    await sched.sync()
    assert set(sched.jobs()) == {daily.id, hourly.id, limited.id}
    await SubscriptionStore(r).remove(hourly.id)
    await sched.sync()
    assert set(sched.jobs()) == {daily.id, limited.id}
