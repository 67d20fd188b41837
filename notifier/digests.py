"""Digests: bundle a subscription's queued alerts into one delivery, on a schedule.

Queued alerts are a digest subscription's matches, plus an instant subscription's matches
over its rate limit (folded). ``DigestBuilder.flush`` takes every alert queued up to now, in
one WATCH/MULTI transaction: marks them ``digested``, creates one ``kind="digest"`` alert
listing them (published as ``alert.created``) and puts it on the due schedule, so the
``Deliverer`` sends it (signed webhook ``digest.created``, or one email) with the same
retries as any alert. An empty queue makes no digest: a digest is never sent empty.

``DigestScheduler`` runs APScheduler's ``AsyncIOScheduler`` with one cron job per
subscription: hourly on the hour (UTC), or daily at HH:MM in the subscription's time zone
(``zoneinfo``; APScheduler handles DST gaps); instant subscriptions with a rate limit get an
hourly job that flushes the folded excess. It re-reads the subscriptions every
``resync_s`` so subscriptions added from the CLI or the API get their job.

Owns: digest creation and its schedule. Must not: send anything itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from redis.exceptions import WatchError

from core import keys
from core.alerts import Alert, AlertStore, epoch
from core.events import AlertCreated
from core.subscriptions import Subscription, SubscriptionStore

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def trigger_for(sub: Subscription) -> CronTrigger | None:
    """When ``sub``'s digest is due; None when it never needs one."""
    if sub.digest is not None and sub.digest.every == "daily" and sub.digest.at:
        hour, minute = (int(x) for x in sub.digest.at.split(":"))
        return CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(sub.digest.tz))
    if sub.digest is not None or sub.rate_limit_per_hour:
        return CronTrigger(minute=0, timezone=UTC)
    return None


class DigestBuilder:
    def __init__(
        self,
        redis: Any,
        *,
        clock: Clock,
        wake: asyncio.Event | None = None,
        stream_maxlen: int = keys.STREAM_MAXLEN,
    ) -> None:
        self.redis: Any = redis
        self.clock = clock
        self.wake = wake
        self.subscriptions = SubscriptionStore(redis)
        self.alerts = AlertStore(redis, stream_maxlen=stream_maxlen)

    async def flush(self, sub_id: str) -> str | None:
        """Make the digest of everything queued for ``sub_id`` up to now; its id, or None."""
        sub = await self.subscriptions.get(sub_id)
        if sub is None or not sub.enabled:
            return None
        now = self.clock()
        queue = keys.digest_queue(sub_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(queue)
                    ids = list(await pipe.zrangebyscore(queue, "-inf", epoch(now)))
                    if not ids:
                        await pipe.unwatch()
                        return None
                    await pipe.watch(*(keys.alert(i) for i in ids))
                    raws = [await pipe.hget(keys.alert(i), "data") for i in ids]
                    children = [Alert.model_validate_json(x) for x in raws if x]
                    digest = self._digest(sub, children, now)
                    pipe.multi()
                    pipe.zrem(queue, *ids)
                    for child in children:
                        AlertStore.queue_save(
                            pipe, child.model_copy(update={"status": "digested", "updated_at": now})
                        )
                    AlertStore.queue_create(pipe, digest, now)
                    self.alerts.queue_event(pipe, AlertCreated, digest, sub.channel.kind)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        if self.wake is not None:
            self.wake.set()
        log.info("digest created", extra={"subscription_id": sub_id, "alerts": len(children)})
        return digest.id

    @staticmethod
    def _digest(sub: Subscription, children: list[Alert], now: datetime) -> Alert:
        basis = f"{sub.id}\0{now.isoformat()}\0{','.join(a.id for a in children)}"
        return Alert(
            id="dg_" + hashlib.sha256(basis.encode()).hexdigest()[:24],
            kind="digest",
            subscription_id=sub.id,
            created_at=now,
            updated_at=now,
            status="pending",
            children=[a.id for a in children],
            period_start=min(a.created_at for a in children),
            period_end=now,
        )


class DigestScheduler:
    """One APScheduler cron job per subscription that needs digests."""

    def __init__(
        self,
        builder: DigestBuilder,
        *,
        scheduler: AsyncIOScheduler | None = None,
        resync_s: float = 60.0,
    ) -> None:
        self.builder = builder
        self.scheduler = scheduler or AsyncIOScheduler(timezone=UTC)
        self.resync_s = resync_s
        self._specs: dict[str, str] = {}

    async def sync(self) -> None:
        """Add, replace or drop jobs to match the stored subscriptions."""
        subs = {s.id: s for s in await self.builder.subscriptions.list_all() if s.enabled}
        wanted = {sid: t for sid, s in subs.items() if (t := trigger_for(s)) is not None}
        for sid in set(self._specs) - set(wanted):
            self.scheduler.remove_job(f"digest:{sid}")
            del self._specs[sid]
        for sid, trigger in wanted.items():
            if self._specs.get(sid) == str(trigger):
                continue
            self.scheduler.add_job(
                self.builder.flush,
                trigger,
                args=[sid],
                id=f"digest:{sid}",
                replace_existing=True,
                coalesce=True,
                misfire_grace_time=3600,
            )
            self._specs[sid] = str(trigger)

    async def run(self, stop: asyncio.Event) -> None:
        await self.sync()
        self.scheduler.start()
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.resync_s)
                except TimeoutError:
                    await self.sync()
        finally:
            self.scheduler.shutdown(wait=False)

    def jobs(self) -> dict[str, str]:
        return dict(self._specs)
