"""The notifier role: route ``item.classified`` events to alerts, and deliver due alerts.

Two loops share one Redis:

- ``NotifierWorker.handle`` (a ``core.bus.Consumer`` handler on ``nm:stream:classified``)
  reads the item, asks ``routing`` which subscriptions get a new alert and which existing
  alert gains a source, and writes all of it in one WATCH/MULTI transaction together with
  the "event routed" marker: a redelivered event (same event id) or a second outlet's copy
  of a story (same story id) never makes a second alert. New instant alerts are put on the
  due schedule; digest subscriptions' alerts (and alerts over a rate limit) are queued for
  the next digest.
- ``Deliverer`` claims due deliveries (a lease in the ``nm:deliveries:due`` sorted set, so
  the schedule survives restarts and a crashed sender's delivery comes back when its lease
  ends), sends them through the channel, records the attempt and either finishes the alert
  or schedules the next attempt (``retry``).

Each alert change a live client cares about is published on ``nm:stream:alert-events`` in
the same MULTI as the change (``AlertStore.queue_event``): ``alert.created`` with the new
alert, ``alert.delivered`` / ``alert.failed`` with the attempt that ended a delivery run.
Nothing is published for a change that did not commit, and nothing committed goes
unpublished.

At least once: a sender killed after its POST left but before the attempt was recorded
resends after the lease with the same ``webhook-id`` (Standard Webhooks), which receivers
dedupe on.

Owns: the alerting side effects. Must not: classify, fetch feeds, or import another service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from core import keys
from core.alerts import Alert, AlertStore, Attempt, alert_id_for, epoch
from core.bus import Delivery
from core.events import AlertCreated, AlertDelivered, AlertFailed, Event, ItemClassified
from core.models import Item
from core.payloads import ItemPayload, SourcePayload
from core.store import ItemStore
from core.subscriptions import Subscription, SubscriptionStore
from notifier import render
from notifier.channels.base import Outcome, SendResult
from notifier.channels.email import EmailSender
from notifier.channels.webhook import WebhookSender
from notifier.retry import SCHEDULE_S, SMTP_SCHEDULE_S, next_delay
from notifier.routing import AddSource, ExistingAlert, NewAlert, RoutedItem, matches, route

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DEFAULT_LEASE_S = 60.0  # > the 15 s webhook deadline and an SMTP session's


def utcnow() -> datetime:
    return datetime.now(UTC)


def story_id_of(event: ItemClassified) -> str | None:
    """The classifier's story id (issue #4) when the event or its labels carry one."""
    for holder in (event, event.labels):
        value = getattr(holder, "story_id", None)
        if isinstance(value, str) and value:
            return value
    return None


def hour_of(now: datetime) -> int:
    return int(epoch(now) // 3600)


class NotifierWorker:
    """Routes classified items to alerts. ``wake`` is set when a delivery became due;
    ``stream_maxlen`` caps the alert events stream."""

    def __init__(
        self,
        redis: Any,
        *,
        clock: Clock = utcnow,
        wake: asyncio.Event | None = None,
        stream_maxlen: int = keys.STREAM_MAXLEN,
    ) -> None:
        self.redis: Any = redis
        self.clock = clock
        self.wake = wake
        self.items = ItemStore(redis)
        self.subscriptions = SubscriptionStore(redis)
        self.alerts = AlertStore(redis, stream_maxlen=stream_maxlen)

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if not isinstance(event, ItemClassified):
            return
        seen = keys.event_seen(event.event_id)
        if await self.redis.exists(seen):
            return
        stored = await self.items.get(event.item_id)
        if stored is None:  # cannot happen for a classified item: let the bus dead-letter it
            raise LookupError(f"item {event.item_id} of event {event.event_id} is not stored")
        item = stored.item
        routed = RoutedItem(
            item_id=item.id,
            feed_id=item.feed_id,
            labels=event.labels,
            title=item.title,
            text=f"{item.summary}\n{item.text}",
            story_id=story_id_of(event),
        )
        subs = [s for s in await self.subscriptions.list_all() if s.enabled]
        subs = [s for s in subs if matches(s.filter, routed)]
        due = await self._apply(event, routed, item, subs, self.clock())
        if due and self.wake is not None:
            self.wake.set()
        log.debug(
            "routed",
            extra={"item_id": item.id, "msg_id": delivery.msg_id, "subscriptions": len(subs)},
        )

    async def _apply(
        self,
        event: ItemClassified,
        routed: RoutedItem,
        item: Item,
        subs: list[Subscription],
        now: datetime,
    ) -> int:
        """Write the routing decisions and the event marker atomically; returns the number of
        deliveries made due."""
        seen = keys.event_seen(event.event_id)
        rated = [s for s in subs if s.digest is None and s.rate_limit_per_hour]
        watched = [seen, *(keys.story(s.id, routed.story) for s in subs)]
        watched += [keys.rate(s.id, hour_of(now)) for s in rated]
        by_id = {s.id: s for s in subs}
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*watched)
                    if await pipe.exists(seen):
                        await pipe.unwatch()
                        return 0
                    found = await self.alerts.existing(list(by_id), routed.story, pipe)
                    for alert in found.values():
                        await pipe.watch(keys.alert(alert.id))
                    sent = {
                        s.id: int(await pipe.get(keys.rate(s.id, hour_of(now))) or 0) for s in rated
                    }
                    existing = {k: ExistingAlert(a.id, a.item_ids()) for k, a in found.items()}
                    decisions = route(routed, subs, existing)
                    pipe.multi()
                    due = 0
                    for d in decisions:
                        if isinstance(d, NewAlert):
                            due += self._queue_new(
                                pipe, by_id[d.subscription_id], event, routed, item, now, sent
                            )
                        elif isinstance(d, AddSource):
                            self._queue_source(pipe, found[d.subscription_id], event, item, now)
                    pipe.set(seen, 1, ex=keys.EVENT_TTL_S)
                    await pipe.execute()
                    return due
                except WatchError:
                    continue

    def _queue_new(
        self,
        pipe: Any,
        sub: Subscription,
        event: ItemClassified,
        routed: RoutedItem,
        item: Item,
        now: datetime,
        sent: dict[str, int],
    ) -> int:
        limit = sub.rate_limit_per_hour
        folded = sub.digest is None and limit is not None and sent.get(sub.id, 0) >= limit
        instant = sub.digest is None and not folded
        alert = Alert(
            id=alert_id_for(sub.id, routed.story, event.event_id),
            subscription_id=sub.id,
            story_id=routed.story,
            created_at=now,
            updated_at=now,
            status="pending" if instant else "queued",
            item=ItemPayload.of(item),
            labels=event.labels,
            sources=[SourcePayload.of(item)],
            event_ids=[event.event_id],
            folded=folded,
        )
        AlertStore.queue_create(pipe, alert, now if instant else None)
        self.alerts.queue_event(pipe, AlertCreated, alert, sub.channel.kind)
        if instant and limit is not None:
            rate_key = keys.rate(sub.id, hour_of(now))
            pipe.incr(rate_key)
            pipe.expire(rate_key, 7200)
        return 1 if instant else 0

    @staticmethod
    def _queue_source(
        pipe: Any, alert: Alert, event: ItemClassified, item: Item, now: datetime
    ) -> None:
        # A digested alert goes back into the queue: the next digest shows its new source.
        requeue = alert.status == "digested"
        new = alert.model_copy(
            update={
                "sources": [*alert.sources, SourcePayload.of(item)],
                "event_ids": [*alert.event_ids, event.event_id],
                "updated_at": now,
                "status": "queued" if requeue else alert.status,
            }
        )
        AlertStore.queue_save(pipe, new)
        if requeue:
            pipe.zadd(keys.digest_queue(alert.subscription_id), {alert.id: epoch(now)})


class Deliverer:
    """Sends due deliveries and records every attempt.

    ``clock`` decides what is due and when the next attempt is (tests drive it by hand);
    ``rand`` draws the retry jitter; ``lease_s`` is how long a claimed delivery stays
    invisible to other senders; ``stream_maxlen`` caps the alert events stream.
    """

    def __init__(
        self,
        redis: Any,
        *,
        webhook: WebhookSender | None = None,
        email: EmailSender | None = None,
        clock: Clock = utcnow,
        rand: Callable[[], float] = random.random,
        lease_s: float = DEFAULT_LEASE_S,
        concurrency: int = 64,
        batch: int = 100,
        idle_s: float = 1.0,
        wake: asyncio.Event | None = None,
        stream_maxlen: int = keys.STREAM_MAXLEN,
    ) -> None:
        self.redis: Any = redis
        self.webhook = webhook
        self.email = email
        self.clock = clock
        self.rand = rand
        self.lease_s = lease_s
        self.batch = batch
        self.idle_s = idle_s
        self.wake = wake or asyncio.Event()
        self.alerts = AlertStore(redis, stream_maxlen=stream_maxlen)
        self.subscriptions = SubscriptionStore(redis)
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; deliveries in flight are finished."""
        backoff = 0.1
        while not stop.is_set():
            try:
                if await self.step():
                    backoff = 0.1
                    continue
                wait = await self._idle_wait()
            except (RedisConnectionError, RedisTimeoutError, OSError) as e:
                log.warning("redis unreachable; retrying", extra={"error": str(e)})
                wait, backoff = backoff, min(backoff * 2, 5.0)
            await self._sleep(stop, wait)
        log.info("deliverer stopped")

    async def _idle_wait(self) -> float:
        nxt = await self.alerts.next_due()
        if nxt is None:
            return self.idle_s
        return max(0.0, min(self.idle_s, nxt - epoch(self.clock())))

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        self.wake.clear()

    async def step(self) -> int:
        """Claim the deliveries due now and send them concurrently; returns how many."""
        ids = await self.alerts.claim_due(self.clock(), self.lease_s, self.batch)
        if ids:
            await asyncio.gather(*(self._guarded(alert_id) for alert_id in ids))
        return len(ids)

    async def _guarded(self, alert_id: str) -> None:
        async with self._slots:
            try:
                await self.deliver(alert_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # the lease brings it back; one bad alert never stops the loop
                log.exception("delivery failed", extra={"alert_id": alert_id})

    async def deliver(self, alert_id: str) -> None:
        """One attempt of one delivery (already claimed)."""
        now = self.clock()
        alert = await self.alerts.get(alert_id)
        if alert is None or alert.status != "pending":
            await self.redis.zrem(keys.DUE, alert_id)
            return
        sub = await self.subscriptions.get(alert.subscription_id)
        if sub is None or not sub.enabled:
            await self._cancel(alert, "subscription removed" if sub is None else "disabled")
            return
        children = await self.alerts.get_many(alert.children) if alert.kind == "digest" else []
        if sub.channel.kind == "webhook":
            if self.webhook is None:
                result = _unconfigured("no webhook sender in this process")
            else:
                result = await self.webhook.send(
                    sub.channel.url,
                    alert.webhook_id,
                    render.body(alert, sub, children),
                    sub.signing_secrets(now),
                )
        else:
            if self.email is None:
                result = _unconfigured("no SMTP server configured (NEWSMON_SMTP_HOST)")
            else:
                result = await self.email.send(alert, sub, children)
        await self._record(alert, sub, result, now)

    async def _cancel(self, alert: Alert, why: str) -> None:
        def change(a: Alert) -> Alert:
            return a.model_copy(update={"status": "cancelled", "last_error": why})

        await self.alerts.update(alert.id, change, lambda pipe, _: pipe.zrem(keys.DUE, alert.id))

    async def _record(
        self, alert: Alert, sub: Subscription, result: SendResult, now: datetime
    ) -> None:
        attempt = Attempt(
            at=now,
            channel=sub.channel.kind,
            outcome=result.outcome.value,
            status=result.status,
            latency_ms=result.latency_ms,
            error=result.error,
            refused=result.refused,
        )
        schedule = SCHEDULE_S if sub.channel.kind == "webhook" else SMTP_SCHEDULE_S
        n = alert.attempts + 1
        delay = None
        if result.outcome is Outcome.RETRY:
            delay = next_delay(n, retry_after=result.retry_after, rand=self.rand, schedule=schedule)
        final = result.outcome is not Outcome.DELIVERED and delay is None
        when = None if delay is None else now + timedelta(seconds=delay)
        status = "delivered" if result.outcome is Outcome.DELIVERED else "failed"
        error = result.error
        if result.outcome is Outcome.RETRY and delay is None:
            error = f"gave up after {n} attempts; last: {result.error}"

        def change(a: Alert) -> Alert:
            return a.model_copy(
                update={
                    "attempts": n,
                    "status": "pending" if when is not None else status,
                    "next_attempt_at": when,
                    "last_error": error,
                    "updated_at": now,
                }
            )

        def also(pipe: Any, new: Alert) -> None:
            AlertStore.queue_attempt(pipe, alert.id, attempt)
            if when is not None:
                pipe.zadd(keys.DUE, {alert.id: epoch(when)})
            else:
                pipe.zrem(keys.DUE, alert.id)
            if final:
                AlertStore.queue_dead_letter(pipe, new, error or "failed")
            if when is None:  # the run ended: delivered, or failed for good
                ended = AlertDelivered if new.status == "delivered" else AlertFailed
                self.alerts.queue_event(pipe, ended, new, sub.channel.kind)

        await self.alerts.update(alert.id, change, also)
        if result.outcome is Outcome.GONE:
            await self.subscriptions.set_enabled(sub.id, False, "webhook answered 410 Gone")
            log.warning("subscription disabled: 410 Gone", extra={"subscription_id": sub.id})
        elif final:
            log.error("alert failed", extra={"alert_id": alert.id, "error": error})


def _unconfigured(why: str) -> SendResult:
    """A channel this process cannot use: final, recorded and dead-lettered, not looped on."""
    return SendResult(Outcome.FAILED, None, 0.0, why)
