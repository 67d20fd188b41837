"""The story index in Redis: LSH band buckets, each item's story, each story's items.

Layout (every key under ``STORY_PREFIX`` = ``nm:story:``):
- ``nm:story:band:{band}:{value}``: a set of story ids having ``value`` in that band (a
  story is represented by its first item's signature, so a flood of templated copies stays
  one entry); expires ``ttl`` after its last write, so only recent stories are candidates.
- ``nm:story:story:{story id}``: a hash ``sig`` (the first item's signature, hex,
  comma-separated) and ``published`` (ISO 8601); expires with the bands.
- ``nm:story:item:{item id}``: a hash ``story`` (the story id). Kept: it answers "which
  story".
- ``nm:story:items:{story id}``: a set of the story's item ids. Kept.

At most ``MAX_CANDIDATES`` stories (those sharing the most bands) are compared per item, so
the cost of an assignment does not grow with the number of indexed items.

Assignment is idempotent per item (an item keeps the story it got first, so a redelivered
or updated item never moves). Two near-duplicates assigned at the same instant by two
workers may start two stories: a rare split, never a wrong merge.

Owns: story persistence and lookup. Must not: decide similarity (that is stories.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from classifier import stories
from classifier.stories import Candidate

STORY_PREFIX = "nm:story:"
# Band buckets outlive the similarity window so late-ingested items still find their story.
DEFAULT_TTL = timedelta(days=14)
MAX_CANDIDATES = 20


def band_key(band: str) -> str:
    return f"{STORY_PREFIX}band:{band}"


def item_key(item_id: str) -> str:
    return f"{STORY_PREFIX}item:{item_id}"


def story_key(story_id: str) -> str:
    return f"{STORY_PREFIX}story:{story_id}"


def members_key(story_id: str) -> str:
    return f"{STORY_PREFIX}items:{story_id}"


class StoryIndex:
    """Near-duplicate stories over a Redis client (decoded responses)."""

    def __init__(
        self,
        redis: Any,
        *,
        window: timedelta = stories.WINDOW,
        threshold: float = stories.THRESHOLD,
        ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        self.redis: Any = redis
        self.window = window
        self.threshold = threshold
        self.ttl_s = int(ttl.total_seconds())

    async def assign(self, item_id: str, title: str, text: str, published: datetime) -> str:
        """The item's story id: its existing one, a near-duplicate's, or a new one (its id)."""
        existing = await self.story_of(item_id)
        if existing is not None:
            return existing
        sig = stories.fingerprint(title, text)
        bands = stories.band_keys(sig)
        candidates = await self._candidates(item_id, bands)
        story = stories.choose_story(
            sig, published, candidates, threshold=self.threshold, window=self.window
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(item_key(item_id), "story", story or item_id)
            pipe.sadd(members_key(story or item_id), item_id)
            if story is None:  # a new story: index it under its first item's signature
                record = {"sig": stories.encode_signature(sig), "published": published.isoformat()}
                pipe.hset(story_key(item_id), mapping=record)
                pipe.expire(story_key(item_id), self.ttl_s)
                for band in bands:
                    pipe.sadd(band_key(band), item_id)
                    pipe.expire(band_key(band), self.ttl_s)
            await pipe.execute()
        story = story or item_id
        return await self.story_of(item_id) or story

    async def story_of(self, item_id: str) -> str | None:
        story: str | None = await self.redis.hget(item_key(item_id), "story")
        return story

    async def items_of(self, story_id: str) -> list[str]:
        return sorted(await self.redis.smembers(members_key(story_id)))

    async def _candidates(self, item_id: str, bands: list[str]) -> list[Candidate]:
        if not bands:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for band in bands:
                pipe.smembers(band_key(band))
            replies = await pipe.execute()
        shared: dict[str, int] = {}
        for members in replies:
            for story in members:
                shared[story] = shared.get(story, 0) + 1
        ids = sorted(shared, key=lambda s: (-shared[s], s))[:MAX_CANDIDATES]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for story in ids:
                pipe.hmget(story_key(story), "sig", "published")
            rows = await pipe.execute()
        return [
            Candidate(story, story, stories.decode_signature(sig), datetime.fromisoformat(when))
            for story, (sig, when) in zip(ids, rows, strict=True)
            if sig and when
        ]
