"""Shared test helpers: a controllable clock, items, classified events, a wired notifier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.bus import Delivery
from core.events import ItemClassified
from core.models import Item, Labels, Match
from core.store import ItemStore
from core.subscriptions import Filter, SubscriptionStore, WebhookChannel, new_subscription
from notifier.channels.webhook import WebhookSender
from notifier.worker import Deliverer, NotifierWorker

T0 = datetime.now(UTC).replace(microsecond=0)
DELIVERY = Delivery("nm:stream:classified", "0-1", 1)


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def item(n: int = 1, *, feed: str = "khmertimes", title: str | None = None, **kw: Any) -> Item:
    return Item(
        id=f"item{n:012d}",
        feed_id=feed,
        url=f"https://{feed}.example/{n}",
        title=title or f"Cambodia and Laos hold border talks ({n})",
        summary="Defence officials met in Vientiane.",
        outlet=feed.title(),
        published=T0 - timedelta(hours=1),
        **kw,
    )


def labels(topics: tuple[str, ...] = ("border_security",), **kw: Any) -> Labels:
    matches = [
        Match(kind="topic", label=t, rule=f"{t}-1", text="border", field="title", start=0, end=6)
        for t in topics
    ]
    return Labels(
        topics=list(topics),
        countries=["KH", "LA"],
        relevant=kw.pop("relevant", True),
        score=kw.pop("score", 0.8),
        matches=matches,
        **kw,
    )


class StoryEvent(ItemClassified):
    """An ``item.classified`` carrying the classifier's story id (issue #4's addition)."""

    story_id: str | None = None


async def stored(r: Any, *items: Item) -> None:
    store = ItemStore(r)
    for it in items:
        await store.add(it, now=T0)


def classified(it: Item, lab: Labels | None = None, story: str | None = None) -> ItemClassified:
    if story is None:
        return ItemClassified(item_id=it.id, feed_id=it.feed_id, labels=lab or labels())
    return StoryEvent(item_id=it.id, feed_id=it.feed_id, labels=lab or labels(), story_id=story)


async def webhook_sub(r: Any, url: str, **kw: Any) -> Any:
    f = kw.pop("filter", Filter(topics=["border_security"]))
    sub = new_subscription(name="ops", channel=WebhookChannel(url=url), now=T0, filter=f, **kw)
    await SubscriptionStore(r).put(sub)
    return sub


@dataclass
class Wired:
    worker: NotifierWorker
    deliverer: Deliverer
    sender: WebhookSender
    clock: Clock


def wire(r: Any, *, timeout_s: float = 15.0, lease_s: float = 60.0) -> Wired:
    clock = Clock()
    sender = WebhookSender(transport=httpx.AsyncHTTPTransport(), timeout_s=timeout_s)
    worker = NotifierWorker(r, clock=clock)
    deliverer = Deliverer(r, webhook=sender, clock=clock, rand=lambda: 0.5, lease_s=lease_s)
    return Wired(worker, deliverer, sender, clock)
