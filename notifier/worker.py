"""The notifier role: consumes ``item.classified`` and routes relevant items to alerts.

This release has no subscriptions or channels yet (issue #5): the worker keeps the
notifier's consumer group moving and counts the relevant items it would alert on, so
the pipeline's last stage is real and its lag is observable.

Owns: the alerting side effect. Must not: classify or fetch.
"""

from __future__ import annotations

import logging
from typing import Any

from core import keys
from core.bus import Delivery
from core.events import Event, ItemClassified

log = logging.getLogger(__name__)


class NotifierWorker:
    def __init__(self, redis: Any) -> None:
        self.redis: Any = redis

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if not isinstance(event, ItemClassified) or not event.labels.relevant:
            return
        # Dedupe on the event id: a redelivered event is counted once.
        first = await self.redis.set(
            f"{keys.PREFIX}:notifier:seen:{event.event_id}", 1, nx=True, ex=86_400 * 7
        )
        if first:
            await self.redis.hincrby(keys.STATS, "relevant_seen_by_notifier", 1)
            log.info(
                "relevant item (no subscriptions yet)",
                extra={"item_id": event.item_id, "msg_id": delivery.msg_id},
            )
