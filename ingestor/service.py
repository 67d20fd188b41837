"""The ingestor role: accepts items, stores each once and publishes ``item.ingested``.

In this release the ingestor loads the baseline seeds at start-up; feed polling arrives
with the scheduler (issue #3). Storing an item and publishing its event happen in one Redis
transaction, so an accepted item is never left without its event, and a second load of the
same items changes nothing.

Owns: accepting items. Must not: classify or notify.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import keys
from core.bus import Bus
from core.events import ItemIngested
from core.models import Item
from core.settings import Settings
from core.store import ItemStore
from ingestor.seeds import load_seed_items

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class AcceptResult:
    added: int
    seen: int


class Ingestor:
    def __init__(self, store: ItemStore, bus: Bus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock

    async def accept(self, items: Iterable[Item]) -> AcceptResult:
        """Store and publish every new item; items already stored are counted as seen."""
        added = seen = 0
        for item in items:
            event = ItemIngested(item=item, occurred_at=self.clock())
            is_new = await self.store.add(item, now=self.clock(), outbox=self._outbox(event))
            if is_new:
                added += 1
                log.info("item accepted", extra={"item_id": item.id, "feed_id": item.feed_id})
            else:
                seen += 1
        return AcceptResult(added=added, seen=seen)

    def _outbox(self, event: ItemIngested) -> Callable[[Any], None]:
        return lambda pipe: self.bus.queue(pipe, keys.STREAM_ITEMS, event)

    async def load_seeds(self, settings: Settings) -> AcceptResult:
        items = load_seed_items(settings.seeds_dir)
        result = await self.accept(items)
        log.info(
            "seeds loaded",
            extra={
                "seeds_dir": str(settings.seeds_dir),
                "added": result.added,
                "seen": result.seen,
            },
        )
        return result
