"""The classifier role: labels every ingested or updated item and publishes the result.

Wires the pure engine to the bus and the store. Applying labels and publishing
``item.classified`` happen in one transaction keyed by the incoming event's id, so a
redelivered event (after a crash between the write and the ack) changes nothing twice.

Owns: the classification side effect. Must not: decide labels itself (that is the engine).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from classifier.engine import Classifier
from core import keys
from core.bus import Bus, Delivery
from core.events import Event, ItemClassified, ItemIngested, ItemUpdated
from core.store import ItemStore

log = logging.getLogger(__name__)


class ClassifierWorker:
    def __init__(
        self, store: ItemStore, bus: Bus, engine: Classifier, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.bus = bus
        self.engine = engine
        self.clock = clock

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if not isinstance(event, ItemIngested | ItemUpdated):
            log.debug("ignored event", extra={"type": event.TYPE, "msg_id": delivery.msg_id})
            return
        item = event.item
        labels = self.engine.classify(item.title, item.text or item.summary)
        now = self.clock()
        # An item whose record is gone (a store flushed behind the stream) is stored again
        # from the event, which carries it whole: no accepted item disappears.
        await self.store.add(item, now=now)
        out = ItemClassified(item_id=item.id, feed_id=item.feed_id, labels=labels, occurred_at=now)
        applied = await self.store.set_labels(
            item.id,
            labels,
            event_id=event.event_id,
            now=now,
            outbox=lambda pipe: self.bus.queue(pipe, keys.STREAM_CLASSIFIED, out),
        )
        log.info(
            "item classified" if applied else "classification already applied",
            extra={
                "item_id": item.id,
                "msg_id": delivery.msg_id,
                "relevant": labels.relevant,
                "topics": labels.topics,
            },
        )
