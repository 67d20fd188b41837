"""The ingestor role: accepts items, stores each once and publishes ``item.ingested``.

The baseline seeds are loaded at start-up; feed items come from the poller. Storing an
item and publishing its event happen in one Redis transaction, so an accepted item is never
left without its event, and a second load of the same items changes nothing.

Owns: accepting items. Must not: classify or notify.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from core import keys
from core.bus import Bus
from core.events import ItemIngested, ItemUpdated, StreamEntry, item_event_entry
from core.models import Item
from core.settings import Settings
from core.store import ItemStore, Upsert
from ingestor.seeds import load_seed_items

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class AcceptResult:
    added: int
    seen: int
    updated: int = 0


class Ingestor:
    def __init__(self, store: ItemStore, bus: Bus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock

    async def accept(self, items: Iterable[Item]) -> AcceptResult:
        """Store and publish every new or changed item; unchanged ones are counted as seen.

        A new item publishes ``item.ingested``, a changed one ``item.updated``, each in the
        same transaction as the write (all of a batch's new items in one transaction).
        """
        batch = list(items)
        results = await self.store.upsert_many(
            batch, now=self.clock(), on_new=self._publish_new, on_update=self._publish_update
        )
        added = seen = updated = 0
        for item, result in zip(batch, results, strict=True):
            if result is Upsert.NEW:
                added += 1
                log.debug("item accepted", extra={"item_id": item.id, "feed_id": item.feed_id})
            elif result is Upsert.UPDATED:
                updated += 1
                log.debug("item updated", extra={"item_id": item.id, "feed_id": item.feed_id})
            else:
                seen += 1
        return AcceptResult(added=added, seen=seen, updated=updated)

    def _publish_new(self, item: Item) -> StreamEntry:
        return self.bus.entry(keys.STREAM_ITEMS, *item_event_entry(ItemIngested, self.clock()))

    def _publish_update(self, item: Item) -> StreamEntry:
        return self.bus.entry(keys.STREAM_ITEMS, *item_event_entry(ItemUpdated, self.clock()))

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
