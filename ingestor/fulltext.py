"""Full text: for feeds that give only a summary, fetch each new item's article page and
extract its main text (trafilatura), so the classifier sees the whole article.

The page is fetched with the same fetcher as feeds (size cap, deadline, SSRF guard). A page
that cannot be fetched or yields no text leaves the item as the feed gave it, with a
warning in the log: full text improves an item, it never loses one.

Owns: completing items' text. Must not: store or publish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from core.models import Item
from ingestor.fetcher import Fetcher, FetchError

log = logging.getLogger(__name__)

HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
SHORT_TEXT = 600  # characters: below this the feed gave a summary, not the article


def needs_full_text(item: Item) -> bool:
    return bool(item.url) and len(item.text) < SHORT_TEXT


def extract_main_text(html: bytes, url: str) -> str | None:
    """The article's main text, or None when the page has none worth keeping."""
    import trafilatura  # heavy import: only feeds that ask for full text pay for it

    text = trafilatura.extract(
        html, url=url, include_comments=False, include_tables=False, favor_precision=True
    )
    return text.strip() if text and len(text.strip()) > 0 else None


class FullText:
    def __init__(self, fetcher: Fetcher, *, concurrency: int = 4) -> None:
        self.fetcher = fetcher
        self.limit = asyncio.Semaphore(concurrency)

    async def complete(self, items: Sequence[Item], *, known: Any) -> list[Item]:
        """Return ``items`` with full text filled in for new, summary-only ones."""
        return list(await asyncio.gather(*(self._one(item, known) for item in items)))

    async def _one(self, item: Item, known: Any) -> Item:
        if not needs_full_text(item) or await known.exists(item.id):
            return item
        assert item.url is not None
        async with self.limit:
            try:
                page = await self.fetcher.fetch(item.url, accept=HTML_ACCEPT)
            except FetchError as e:
                log.warning("full text not fetched", extra={"item_id": item.id, "error": str(e)})
                return item
        if page.body is None:
            return item
        text = await asyncio.to_thread(extract_main_text, page.body, page.url)
        if not text or len(text) <= len(item.text):
            return item
        return item.model_copy(update={"text": text})
