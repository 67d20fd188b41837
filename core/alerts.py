"""Alerts and their delivery attempts in Redis: written by the notifier, listed by the API.

An alert is one subscription's notice of one story (``kind="alert"``), or one digest
bundling several alerts (``kind="digest"``). Its ``webhook_id`` and ``message_id`` are fixed
at creation, so every retry of a delivery carries the same Standard Webhooks ``webhook-id``
and the same RFC 5322 ``Message-ID``, and receivers can dedupe.

Status: ``pending`` (a delivery is due or in flight) → ``delivered`` | ``failed``
(exhausted or refused: also dead-lettered to ``nm:stream:alerts:dead``) | ``cancelled``
(subscription disabled or removed); ``queued`` (waiting for a digest) → ``digested``.

Every alert change that a live client cares about is published as an event on
``nm:stream:alert-events`` in the transaction that commits the change (an outbox, like
``item.classified``): ``alert.created`` when an alert is stored, ``alert.delivered`` /
``alert.failed`` when a delivery run ends. ``queue_event`` queues one on a caller's MULTI.

The delivery queue is the ``nm:deliveries:due`` sorted set: the notifier's ``Deliverer``
claims what is due there. The API queues work the same way (a test alert, a redelivery):
it writes the alert and makes it due in one transaction, and never sends anything itself.

Owns: the alert and attempt models and their persistence (keys in ``core.keys``) with its
events, claiming due deliveries, queueing test alerts and redeliveries. Must not: route,
send, or decide retry times.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import WatchError

from core import keys
from core.bus import Bus
from core.events import AlertCreated, AlertEvent
from core.models import Labels
from core.payloads import ItemPayload, SourcePayload

AlertStatus = Literal["pending", "delivered", "failed", "cancelled", "queued", "digested"]
ChannelKind = Literal["webhook", "email"]
E = TypeVar("E", bound=AlertEvent)

# Claim due deliveries: take up to ARGV[3] ids due by ARGV[1] and push each to ARGV[2] (the
# lease's end), atomically, so two notifier processes never send one delivery at once and a
# sender that dies mid-delivery has its delivery come back when the lease ends.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


class Attempt(BaseModel):
    """One delivery attempt: when, what came back, how long it took, what went wrong."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    at: datetime
    channel: ChannelKind
    outcome: Literal["delivered", "retry", "gone", "failed"]
    status: int | None = None  # HTTP status, or SMTP reply code
    latency_ms: float = 0.0
    error: str | None = None
    refused: dict[str, str] = Field(default_factory=dict)  # email: recipient → reply


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    kind: Literal["alert", "digest"] = "alert"
    subscription_id: str
    story_id: str = ""
    created_at: datetime
    updated_at: datetime
    status: AlertStatus
    item: ItemPayload | None = None  # the first item (alerts)
    labels: Labels | None = None
    sources: list[SourcePayload] = Field(default_factory=list)
    event_ids: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)  # a digest's alerts
    period_start: datetime | None = None
    period_end: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    folded: bool = False  # over the rate limit: sent in the next digest instead
    test: bool = False  # made by ``POST /v1/subscriptions/{id}/test``: no item, no story

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id}"

    def message_id(self, domain: str) -> str:
        return f"<{self.id}@{domain}>"

    def item_ids(self) -> frozenset[str]:
        return frozenset(s.item_id for s in self.sources)


def alert_id_for(sub_id: str, story_id: str, event_id: str) -> str:
    """Deterministic: routing one event twice names the same alert."""
    return "al_" + hashlib.sha256(f"{sub_id}\0{story_id}\0{event_id}".encode()).hexdigest()[:24]


def epoch(when: datetime) -> float:
    return when.timestamp()


def alert_event(cls: type[E], alert: Alert, channel: ChannelKind) -> E:
    """The ``cls`` event for ``alert`` as it is now: ids, state and times, never the payload
    or the channel's address."""
    return cls(
        alert_id=alert.id,
        subscription_id=alert.subscription_id,
        kind=alert.kind,
        item_id=alert.item.id if alert.item is not None and not alert.test else None,
        story_id=alert.story_id,
        channel=channel,
        status=alert.status,
        attempts=alert.attempts,
        test=alert.test,
        created_at=alert.created_at,
        updated_at=alert.updated_at,
        occurred_at=alert.updated_at,
    )


REDELIVERABLE: frozenset[AlertStatus] = frozenset({"delivered", "failed", "cancelled"})
TEST_TITLE = "newsmon test alert"


def make_test_alert(sub_id: str, now: datetime) -> Alert:
    """A test alert for ``sub_id``: a made-up item, so receivers see the real payload shape.
    Its ids say ``test`` so that no receiver mistakes it for news."""
    alert_id = "al_test_" + secrets.token_hex(8)
    item = ItemPayload(
        id=f"test_{alert_id[8:]}",
        feed_id="newsmon-test",
        title=TEST_TITLE,
        outlet="newsmon",
        published=now,
        summary="A test alert sent on request to check this subscription's channel.",
    )
    return Alert(
        id=alert_id,
        subscription_id=sub_id,
        story_id=f"test_{alert_id[8:]}",
        created_at=now,
        updated_at=now,
        status="pending",
        item=item,
        labels=Labels(),
        sources=[
            SourcePayload(
                item_id=item.id,
                feed_id=item.feed_id,
                outlet=item.outlet,
                title=item.title,
                published=now,
            )
        ],
        test=True,
    )


class AlertStore:
    """Alert records, attempts, story pointers, the due-delivery schedule and the alert
    events (``stream_maxlen``: their stream's approximate cap, as ``NEWSMON_STREAM_MAXLEN``)."""

    def __init__(self, redis: Any, *, stream_maxlen: int = keys.STREAM_MAXLEN) -> None:
        self.redis: Any = redis
        self.events = Bus(redis, maxlen=stream_maxlen)

    # -- reads (also the API's) ------------------------------------------------------------
    async def get(self, alert_id: str) -> Alert | None:
        raw = await self.redis.hget(keys.alert(alert_id), "data")
        return None if raw is None else Alert.model_validate_json(raw)

    async def get_many(self, alert_ids: list[str]) -> list[Alert]:
        if not alert_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert_id in alert_ids:
                pipe.hget(keys.alert(alert_id), "data")
            rows = await pipe.execute()
        return [Alert.model_validate_json(row) for row in rows if row]

    async def attempts(self, alert_id: str) -> list[Attempt]:
        rows = await self.redis.lrange(keys.attempts(alert_id), 0, -1)
        return [Attempt.model_validate_json(row) for row in rows]

    async def recent(
        self, *, subscription_id: str | None = None, limit: int = 50, before: float | None = None
    ) -> list[Alert]:
        """Newest first; ``before`` (epoch seconds, exclusive) pages back."""
        index = keys.alerts_of(subscription_id) if subscription_id else keys.ALERTS
        hi = f"({before}" if before is not None else "+inf"
        ids = await self.redis.zrevrangebyscore(index, hi, "-inf", start=0, num=limit)
        return await self.get_many(list(ids))

    async def existing(self, sub_ids: list[str], story_id: str, pipe: Any) -> dict[str, Alert]:
        """Each subscription's alert for ``story_id`` (read on a WATCHing pipeline)."""
        found: dict[str, Alert] = {}
        for sub_id in sub_ids:
            alert_id = await pipe.get(keys.story(sub_id, story_id))
            if alert_id is None:
                continue
            raw = await pipe.hget(keys.alert(alert_id), "data")
            if raw is None:
                continue
            found[sub_id] = Alert.model_validate_json(raw)
        return found

    # -- writes (queued on a caller's MULTI pipeline) ----------------------------------------
    @staticmethod
    def queue_save(pipe: Any, alert: Alert) -> None:
        pipe.hset(keys.alert(alert.id), "data", alert.model_dump_json())

    @staticmethod
    def queue_create(pipe: Any, alert: Alert, due: datetime | None) -> None:
        AlertStore.queue_save(pipe, alert)
        score = epoch(alert.created_at)
        pipe.zadd(keys.ALERTS, {alert.id: score})
        pipe.zadd(keys.alerts_of(alert.subscription_id), {alert.id: score})
        if alert.kind == "alert" and not alert.test:
            pipe.set(
                keys.story(alert.subscription_id, alert.story_id), alert.id, ex=keys.STORY_TTL_S
            )
        if due is not None:
            pipe.zadd(keys.DUE, {alert.id: epoch(due)})
        if alert.status == "queued":
            pipe.zadd(keys.digest_queue(alert.subscription_id), {alert.id: score})

    async def update(
        self,
        alert_id: str,
        change: Callable[[Alert], Alert | None],
        also: Callable[[Any, Alert], None] | None = None,
    ) -> Alert | None:
        """Read-modify-write one alert under WATCH; ``change`` returning None changes
        nothing; ``also`` queues more commands in the same transaction."""
        key = keys.alert(alert_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, "data")
                    if raw is None:
                        await pipe.unwatch()
                        return None
                    new = change(Alert.model_validate_json(raw))
                    if new is None:
                        await pipe.unwatch()
                        return None
                    pipe.multi()
                    self.queue_save(pipe, new)
                    if also is not None:
                        also(pipe, new)
                    await pipe.execute()
                    return new
                except WatchError:
                    continue

    def queue_event(
        self, pipe: Any, cls: type[AlertEvent], alert: Alert, channel: ChannelKind
    ) -> None:
        """Publish ``cls`` for ``alert`` (as the same MULTI saves it) on the alert events
        stream: published if and only if the change commits."""
        self.events.queue(pipe, keys.STREAM_ALERT_EVENTS, alert_event(cls, alert, channel))

    @staticmethod
    def queue_attempt(pipe: Any, alert_id: str, attempt: Attempt) -> None:
        pipe.rpush(keys.attempts(alert_id), attempt.model_dump_json())

    @staticmethod
    def queue_dead_letter(pipe: Any, alert: Alert, error: str) -> None:
        record = {
            "alert_id": alert.id,
            "subscription_id": alert.subscription_id,
            "attempts": str(alert.attempts),
            "error": error[:2000],
            "dead_at": str(int(time.time() * 1000)),
            "alert": alert.model_dump_json(),
        }
        pipe.xadd(keys.DEAD, record, maxlen=keys.STREAM_MAXLEN, approximate=True)

    async def dead_letters(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        rows: list[tuple[str, dict[str, str]]] = await self.redis.xrevrange(keys.DEAD, count=count)
        return rows

    # -- work queued by the API ---------------------------------------------------------------
    async def create_test(self, sub_id: str, channel: ChannelKind, now: datetime) -> Alert:
        """Store a test alert for ``sub_id`` (whose channel is a ``channel``) and make it due
        now (the Deliverer sends it)."""
        alert = make_test_alert(sub_id, now)
        async with self.redis.pipeline(transaction=True) as pipe:
            self.queue_create(pipe, alert, now)
            self.queue_event(pipe, AlertCreated, alert, channel)
            await pipe.execute()
        return alert

    async def redeliver(self, alert_id: str, now: datetime) -> Alert | None:
        """Make a finished alert (``REDELIVERABLE``) pending and due now, with a fresh retry
        schedule (``attempts`` counts this run; the attempt records keep every one). None
        when the alert is missing or not finished (in flight, waiting for a digest)."""

        def change(a: Alert) -> Alert | None:
            if a.status not in REDELIVERABLE:
                return None
            return a.model_copy(
                update={
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": None,
                    "updated_at": now,
                }
            )

        return await self.update(
            alert_id, change, lambda pipe, new: pipe.zadd(keys.DUE, {new.id: epoch(now)})
        )

    async def page(
        self,
        *,
        subscription_id: str | None,
        count: int,
        after: str | None = None,
        before: float | None = None,
    ) -> list[tuple[str, float]]:
        """Up to ``count`` (alert id, creation time in epoch s), newest first: those after the
        alert ``after`` (a cursor), else those created before ``before`` (exclusive), else the
        newest.

        A cursor's position is taken at read time (ZREVRANK), so alerts created while a client
        pages never shift or repeat what it sees next. If the cursor's alert has gone, the
        caller's ``before`` (that alert's time) takes over."""
        index = keys.alerts_of(subscription_id) if subscription_id else keys.ALERTS
        rows: list[tuple[str, float]]
        if after is not None:
            rank = await self.redis.zrevrank(index, after)
            if rank is not None:
                start = int(rank) + 1
                rows = await self.redis.zrevrange(index, start, start + count - 1, withscores=True)
                return [(str(m), float(sc)) for m, sc in rows]
        hi = f"({before!r}" if before is not None else "+inf"
        rows = await self.redis.zrevrangebyscore(
            index, hi, "-inf", start=0, num=count, withscores=True
        )
        return [(str(m), float(sc)) for m, sc in rows]

    # -- the due schedule ---------------------------------------------------------------------
    async def claim_due(self, now: datetime, lease_s: float, count: int) -> list[str]:
        ids: list[str] = await self.redis.eval(
            _CLAIM, 1, keys.DUE, epoch(now), epoch(now) + lease_s, count
        )
        return ids

    async def next_due(self) -> float | None:
        rows = await self.redis.zrange(keys.DUE, 0, 0, withscores=True)
        return float(rows[0][1]) if rows else None

    async def due(self) -> dict[str, float]:
        rows = await self.redis.zrange(keys.DUE, 0, -1, withscores=True)
        return {alert_id: float(score) for alert_id, score in rows}


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
