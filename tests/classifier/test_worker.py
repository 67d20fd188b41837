"""The worker against a real Redis: labels applied, story ids stored, rules hot-reloaded;
and ``reclassify`` re-publishes stored items through the bus."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifier.commands import reclassify
from classifier.engine import Classifier
from classifier.lexicon import default_path, load_lexicon
from classifier.watcher import RulesWatcher
from classifier.worker import ClassifierWorker
from core import keys
from core.bus import Bus, Delivery
from core.events import ItemIngested
from core.models import Item
from core.store import ItemStore

NOW = datetime(2024, 8, 1, tzinfo=UTC)


def _item(n: int, text: str) -> Item:
    return Item(
        id=f"{n:016x}",
        feed_id="test",
        guid=f"g{n}",
        title="Cambodia and Laos",
        text=text,
        published=NOW,
    )


async def test_worker_reloads_rules_and_records_the_version(r: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_bytes(default_path().read_bytes())
    store, bus = ItemStore(r), Bus(r)
    engine = Classifier(load_lexicon(rules))
    watcher = RulesWatcher(rules, lexicon=engine.lexicon, interval_s=0)
    worker = ClassifierWorker(store, bus, engine, lambda: NOW, watcher=watcher)
    delivery = Delivery(keys.STREAM_ITEMS, "1-0", 1)

    await worker.handle(ItemIngested(item=_item(1, "They discussed zorblat.")), delivery)
    first = await store.get(_item(1, "").id)
    assert first is not None and first.labels is not None
    assert first.labels.topics == []
    assert await worker.stories.story_of(_item(1, "").id) == _item(1, "").id

    rules.write_text(
        rules.read_text().replace(
            "        - border security\n", "        - border security\n        - zorblat\n", 1
        )
    )
    await worker.handle(ItemIngested(item=_item(2, "They discussed zorblat.")), delivery)
    second = await store.get(_item(2, "").id)
    assert second is not None and second.labels is not None
    assert second.labels.topics == ["border_security"]
    assert second.labels.rules_version != first.labels.rules_version


async def test_reclassify_publishes_every_stored_item(r: Any) -> None:
    store, bus = ItemStore(r), Bus(r)
    for n in range(5):
        await store.add(_item(n, "text"), now=NOW)
    sent = await reclassify(store, bus, page=2, progress=False)
    assert sent == 5
    entries = await r.xrange(keys.STREAM_ITEMS)
    assert len(entries) == 5
    assert {fields["type"] for _id, fields in entries} == {"item.updated"}
