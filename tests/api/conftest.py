"""Fixtures for the API: the app on a real Redis, an HTTP client over ASGI, and helpers that
store and classify items the way the services do (through ``ItemStore`` and the bus)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.app import create_app
from core import keys
from core.bus import Bus
from core.events import ItemClassified
from core.models import Item, Labels, Match
from core.settings import Settings
from core.store import ItemStore

T0 = datetime(2024, 3, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def make_item(n: int, *, feed: str = "f1", title: str | None = None, text: str = "") -> Item:
    return Item(
        id=f"{n:016x}",
        feed_id=feed,
        title=title or f"item {n}",
        text=text,
        url=f"https://example.org/{n}",
        outlet="Example",
        published=T0 + timedelta(minutes=n),
    )


def make_labels(
    *topics: str,
    relevant: bool = False,
    score: float = 0.5,
    countries: tuple[str, ...] = (),
    officials: tuple[str, ...] = (),
) -> Labels:
    matches = [
        Match(kind="topic", label=t, rule=f"{t}.r", text=t, field="title", start=0, end=len(t))
        for t in topics
    ]
    return Labels(
        topics=sorted(topics),
        countries=sorted(countries),
        officials=sorted(officials),
        relevant=relevant,
        score=score,
        matches=matches,
        rules_version="test",
    )


class World:
    """Stores and classifies items as the ingestor and classifier would."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.store = ItemStore(redis)
        self.bus = Bus(redis)

    async def add(self, item: Item, labels: Labels | None = None) -> None:
        await self.store.add(item, now=NOW)
        if labels is not None:
            await self.classify(item, labels)

    async def classify(self, item: Item, labels: Labels) -> None:
        event = ItemClassified(item_id=item.id, feed_id=item.feed_id, labels=labels)
        await self.store.set_labels(
            item.id,
            labels,
            event_id=event.event_id,
            now=NOW,
            outbox=lambda pipe: self.bus.queue(pipe, keys.STREAM_CLASSIFIED, event),
        )


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(data_dir=tmp_path, load_seeds=False)


@pytest.fixture
def world(r: Any) -> World:
    return World(r)


def fake_classify(title: str, text: str) -> Labels:
    hit = "border" in f"{title} {text}".lower()
    return make_labels("border_security", relevant=True, score=0.8) if hit else Labels()


@pytest.fixture
def app(settings: Settings, r: Any) -> Any:
    return create_app(
        settings,
        r,
        classify=fake_classify,
        taxonomy={"topic": ["border_security", "terrorism"], "country": ["laos"]},
        clock=lambda: NOW,
    )


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
