"""Feed definitions and per-feed polling state in Redis, plus the two locks polling needs.

- ``nm:feeds`` (hash): feed id → ``FeedDef`` JSON. Runtime changes (``newsmon feeds add``)
  live here; the YAML file seeds it at start-up without removing runtime additions.
- ``nm:feed:state:{id}``: ``FeedState`` JSON (ETag, Last-Modified, next check and why,
  failures, last error and success, counts).
- ``nm:feeds:due`` (sorted set): feed id → next check time, so "which feeds are due" is one
  ZRANGEBYSCORE, whatever the number of feeds.
- A **lease** per feed (SET NX PX with a random token, released only by its holder) keeps
  two ingestor processes from polling one feed at the same moment; it expires on its own if
  the holder dies.
- A **host slot** per host (SET NX PX) spaces requests to one host across every process.

Owns: that persistence. Must not: decide when a feed is due (``decider``) or fetch.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from core import keys
from ingestor.decider import FeedState, initial_state
from ingestor.feeds import FeedDef

# Compare-and-delete: release a lease only if we still hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class FeedRegistry:
    def __init__(self, redis: Any) -> None:
        self.redis: Any = redis

    # -- definitions ---------------------------------------------------------------------
    async def add(self, feed: FeedDef, *, now: datetime) -> bool:
        """Register a feed (due now). False when a feed with this id already exists."""
        created = await self.redis.hsetnx(keys.FEEDS, feed.id, feed.model_dump_json())
        if not created:
            return False
        await self.save_state(feed.id, initial_state(feed, now))
        return True

    async def sync(self, feeds: list[FeedDef], *, now: datetime) -> int:
        """Bring in the YAML file's feeds: new ones are added (due now), changed ones are
        updated (a changed URL starts the feed's state afresh). Feeds added at run time and
        absent from the file are kept. Returns how many were added or changed."""
        changed = 0
        for feed in feeds:
            stored = await self.get(feed.id)
            if stored is None:
                changed += await self.add(feed, now=now)
            elif stored != feed:
                await self.update(feed)
                if stored.url != feed.url:
                    await self.save_state(feed.id, initial_state(feed, now))
                changed += 1
        return changed

    async def update(self, feed: FeedDef) -> None:
        await self.redis.hset(keys.FEEDS, feed.id, feed.model_dump_json())

    async def remove(self, feed_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.FEEDS, feed_id)
            pipe.delete(keys.feed_state_key(feed_id))
            pipe.zrem(keys.FEEDS_DUE, feed_id)
            removed, _, _ = await pipe.execute()
        return bool(removed)

    async def get(self, feed_id: str) -> FeedDef | None:
        raw = await self.redis.hget(keys.FEEDS, feed_id)
        return FeedDef.model_validate_json(raw) if raw else None

    async def all(self) -> list[FeedDef]:
        raw = await self.redis.hgetall(keys.FEEDS)
        return sorted((FeedDef.model_validate_json(v) for v in raw.values()), key=lambda f: f.id)

    # -- state ---------------------------------------------------------------------------
    async def state(self, feed_id: str) -> FeedState | None:
        raw = await self.redis.get(keys.feed_state_key(feed_id))
        return FeedState.model_validate_json(raw) if raw else None

    async def states(self, feed_ids: list[str]) -> dict[str, FeedState]:
        if not feed_ids:
            return {}
        raws = await self.redis.mget([keys.feed_state_key(i) for i in feed_ids])
        return {
            i: FeedState.model_validate_json(r) for i, r in zip(feed_ids, raws, strict=True) if r
        }

    async def feed_and_state(self, feed_id: str) -> tuple[FeedDef | None, FeedState | None]:
        """The definition and the state of a feed, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.FEEDS, feed_id)
            pipe.get(keys.feed_state_key(feed_id))
            raw_def, raw_state = await pipe.execute()
        feed = FeedDef.model_validate_json(raw_def) if raw_def else None
        state = FeedState.model_validate_json(raw_state) if raw_state else None
        return feed, state

    async def save_state(
        self, feed_id: str, state: FeedState, *, release_token: str | None = None
    ) -> None:
        """Store the state and reschedule; with ``release_token``, release the lease in the
        same round trip."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.feed_state_key(feed_id), state.model_dump_json())
            if state.gone:
                pipe.zrem(keys.FEEDS_DUE, feed_id)  # 410: never polled again
            else:
                pipe.zadd(keys.FEEDS_DUE, {feed_id: state.next_check_at.timestamp()})
            if release_token is not None:
                pipe.eval(_RELEASE, 1, keys.feed_lease_key(feed_id), release_token)
            await pipe.execute()

    async def due(self, now: datetime, limit: int = 1000) -> list[str]:
        ids: list[str] = await self.redis.zrangebyscore(
            keys.FEEDS_DUE, "-inf", now.timestamp(), start=0, num=limit
        )
        return ids

    async def make_due(self, feed_id: str, now: datetime) -> None:
        await self.redis.zadd(keys.FEEDS_DUE, {feed_id: now.timestamp()}, xx=True)

    # -- locks ---------------------------------------------------------------------------
    async def acquire_lease(self, feed_id: str, ttl_s: float) -> str | None:
        token = secrets.token_hex(8)
        ok = await self.redis.set(
            keys.feed_lease_key(feed_id), token, nx=True, px=int(ttl_s * 1000)
        )
        return token if ok else None

    async def release_lease(self, feed_id: str, token: str) -> None:
        await self.redis.eval(_RELEASE, 1, keys.feed_lease_key(feed_id), token)

    async def host_slot(self, host: str, spacing_s: float) -> float:
        """Take the host's slot: 0.0 when taken, else the seconds to wait before retrying."""
        ok = await self.redis.set(
            keys.host_slot_key(host), "1", nx=True, px=max(int(spacing_s * 1000), 1)
        )
        if ok:
            return 0.0
        ttl_ms = int(await self.redis.pttl(keys.host_slot_key(host)))
        return max(ttl_ms, 1) / 1000
