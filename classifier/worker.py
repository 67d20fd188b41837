"""The classifier role: labels every ingested or updated item and publishes the result.

Wires the pure engine to the bus and the store. Applying labels and publishing
``item.classified`` happen in one transaction keyed by the incoming event's id, so a
redelivered event (after a crash between the write and the ack) changes nothing twice.
Before each item the worker asks its ``RulesWatcher`` (cheap: a stat every few seconds)
whether the rules file changed, and swaps in a new engine if so. Each item is also given
a story id (near-duplicates share one) in the story index (``nm:story:…``).

Owns: the classification side effect. Must not: decide labels itself (that is the engine).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from classifier.engine import Classifier
from classifier.story_index import StoryIndex
from classifier.watcher import RulesWatcher
from core import keys
from core.bus import Bus, Delivery
from core.events import Event, ItemClassified, ItemIngested, ItemUpdated
from core.store import ItemStore

log = logging.getLogger(__name__)


class ClassifierWorker:
    def __init__(
        self,
        store: ItemStore,
        bus: Bus,
        engine: Classifier,
        clock: Callable[[], datetime],
        *,
        watcher: RulesWatcher | None = None,
        stories: StoryIndex | None = None,
        watch: bool = True,
    ) -> None:
        """``watcher`` defaults to one on the file the engine's rules came from (no
        watching with ``watch=False`` or rules not loaded from a file); ``stories`` to an
        index on the store's Redis."""
        self.store = store
        self.bus = bus
        self.engine = engine
        self.clock = clock
        source = engine.lexicon.source
        if watcher is None and watch and source is not None:
            watcher = RulesWatcher(source, lexicon=engine.lexicon)
        self.watcher = watcher
        self.stories = stories if stories is not None else StoryIndex(store.redis)

    def refresh_rules(self) -> None:
        """Swap in the rules file's new version, if it changed (and loads)."""
        if self.watcher is not None:
            fresh = self.watcher.check()
            if fresh is not None:
                self.engine = Classifier(fresh, self.engine.choice)

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if not isinstance(event, ItemIngested | ItemUpdated):
            log.debug("ignored event", extra={"type": event.TYPE, "msg_id": delivery.msg_id})
            return
        item = event.item
        if await self.store.applied_event(item.id) == event.event_id:
            # A redelivery of an event already applied (its consumer died before the ack):
            # nothing to do again. set_labels below is idempotent too; this saves the work.
            log.info(
                "classification already applied",
                extra={"item_id": item.id, "msg_id": delivery.msg_id},
            )
            return
        self.refresh_rules()
        body = item.text or item.summary
        labels = self.engine.classify(item.title, body)
        now = self.clock()
        # An item whose record is gone (a store flushed behind the stream) is stored again
        # from the event, which carries it whole: no accepted item disappears.
        await self.store.add(item, now=now)
        story = await self.stories.assign(item.id, item.title, body, item.published)
        labels = labels.model_copy(update={"story_id": story})
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
                "story_id": story,
                "rules_version": labels.rules_version,
            },
        )
