"""Wiring the ingestor's polling: the fetcher, the poller, and who runs the polls.

Owns: building a ``Fetcher`` and a ``Poller`` from the settings, and ``polls_for``: poll
worker processes (``runner.pollworkers``, ``NEWSMON_POLL_WORKERS``, one per core by default)
or, with none, a ``Poller`` in this process. Imports only ``core`` and ``ingestor``, so a
poll worker process loads nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from core.bus import Bus
from core.connection import RedisHandle
from core.settings import Settings
from core.store import ItemStore
from ingestor.fetcher import Fetcher
from ingestor.fulltext import FullText
from ingestor.poller import Politeness, Poller
from ingestor.scheduler import Polls
from ingestor.service import Ingestor
from ingestor.state import FeedRegistry
from runner.pollworkers import PollWorkers, worker_count


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_fetcher(settings: Settings) -> Fetcher:
    return Fetcher(
        allow_private=settings.allow_private_networks,
        max_bytes=settings.max_body_bytes,
        connect_timeout=settings.connect_timeout_s,
        deadline=settings.fetch_timeout_s,
    )


def make_poller(
    settings: Settings, redis: Any, fetcher: Fetcher, *, parse_inline: bool = False
) -> Poller:
    ingestor = Ingestor(ItemStore(redis), Bus(redis, maxlen=settings.stream_maxlen), utcnow)
    return Poller(
        FeedRegistry(redis),
        ingestor,
        fetcher,
        utcnow,
        politeness=Politeness(host_spacing_s=settings.host_spacing_s),
        fulltext=FullText(fetcher),
        parse_inline=parse_inline,
    )


@contextlib.asynccontextmanager
async def polls_for(
    settings: Settings, handle: RedisHandle, *, feeds: int | None = None
) -> AsyncIterator[Polls]:
    """What polls feeds for this process: ``NEWSMON_POLL_WORKERS`` worker processes (no
    more than ``feeds``, when the caller knows how many it will poll), or, with 0 workers
    or a single feed, a ``Poller`` here (parsing in a thread, so the event loop keeps
    serving whatever else this process runs)."""
    count = worker_count(settings)
    if feeds is not None:
        count = min(count, feeds)
    if count >= 1 and feeds != 1:
        shared = settings.model_copy(update={"redis_url": handle.url})
        async with PollWorkers(shared, count) as workers:
            yield workers
    else:
        async with make_fetcher(settings) as fetcher:
            yield make_poller(settings, handle.client, fetcher)
