"""Seeds load at start-up idempotently: twice → five items and five events, not ten."""

from __future__ import annotations

from datetime import UTC, datetime

from core import keys
from core.bus import Bus
from core.settings import Settings
from core.store import ItemQuery, ItemStore
from ingestor.service import Ingestor

NOW = datetime(2025, 1, 1, tzinfo=UTC)


async def test_loading_seeds_twice_leaves_five_items(r):
    ingestor = Ingestor(ItemStore(r), Bus(r), lambda: NOW)
    settings = Settings()
    first = await ingestor.load_seeds(settings)
    second = await ingestor.load_seeds(settings)
    assert (first.added, first.seen) == (5, 0)
    assert (second.added, second.seen) == (0, 5)
    store = ItemStore(r)
    assert await store.count() == 5
    assert await r.xlen(keys.STREAM_ITEMS) == 5  # one item.ingested per item, ever
    page = await store.query(ItemQuery(feed="seeds"))
    assert len(page.items) == 5
    assert [s.item.published for s in page.items] == sorted(
        (s.item.published for s in page.items), reverse=True
    )
