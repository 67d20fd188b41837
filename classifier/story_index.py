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
the cost of an assignment does not grow with the number of indexed items. Finding them is
one script in Redis (``_CANDIDATES``): it counts the stories across the item's band buckets
and returns the top ones with their signatures. A bucket of a common shingle can hold
thousands of stories, and reading all of them into Python to count them was the largest
cost of classifying an item.

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

# KEYS: the item's band buckets. ARGV[1]: how many stories to return; ARGV[2]: the story
# key prefix. The stories sharing the most buckets (ties: smaller id first), each as
# id, signature, published (false when its record expired), flattened.
_CANDIDATES = """
local counts, order = {}, {}
for i = 1, #KEYS do
  for _, story in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    local n = counts[story]
    if n == nil then
      counts[story] = 1
      order[#order + 1] = story
    else
      counts[story] = n + 1
    end
  end
end
table.sort(order, function(a, b)
  if counts[a] ~= counts[b] then return counts[a] > counts[b] end
  return a < b
end)
local out = {}
for i = 1, math.min(tonumber(ARGV[1]), #order) do
  local row = redis.call('HMGET', ARGV[2] .. order[i], 'sig', 'published')
  out[#out + 1] = order[i]
  out[#out + 1] = row[1]
  out[#out + 1] = row[2]
end
return out
"""


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
        self._find = redis.register_script(_CANDIDATES)

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
        flat = await self._find(
            keys=[band_key(band) for band in bands],
            args=[MAX_CANDIDATES, story_key("")],
        )
        return [
            Candidate(story, story, stories.decode_signature(sig), datetime.fromisoformat(when))
            for story, sig, when in zip(flat[::3], flat[1::3], flat[2::3], strict=True)
            if sig and when
        ]
