"""Feed definitions and health as the API reads and writes them in Redis.

The layout is the ingestor's (``ingestor.state``, keys in ``core.keys``): ``nm:feeds`` hash
of definition JSON, ``nm:feed:state:{id}`` state JSON, ``nm:feeds:due`` next-check times.
The API writes definitions in the ingestor's exact shape (``url, id, name, interval_s,
fetch_full_text, enabled``) and a new feed's first state (``url, next_check_at,
next_check_reason``), and reads states leniently (unknown fields ignored), since it may not
import the ingestor.

"Poll now" is ``ZADD nm:feeds:due XX <now>``: the scheduler polls the feed on its next tick
(``NEWSMON_POLL_TICK_S``), under its usual lease and host spacing. XX leaves a gone (410)
feed, which has no due entry, alone.

Owns: that mapping. Must not: fetch, or decide when a feed is due.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from api.schemas import FeedHealth, FeedIn, FeedOut, FeedPatch, slug
from core import keys


def _def_json(feed: dict[str, Any]) -> str:
    fields = ("url", "id", "name", "interval_s", "fetch_full_text", "enabled")
    return json.dumps({f: feed[f] for f in fields})


def _initial_state(url: str, now: datetime) -> str:
    return json.dumps(
        {"url": url, "next_check_at": now.isoformat(), "next_check_reason": "new feed"}
    )


def _out(definition: str, state: str | None) -> FeedOut:
    data = json.loads(definition)
    health = None
    if state:
        raw = json.loads(state)
        health = FeedHealth.model_validate({k: raw[k] for k in FeedHealth.model_fields if k in raw})
    return FeedOut(
        id=data["id"],
        url=data["url"],
        name=data.get("name") or data["id"],
        interval_s=int(data.get("interval_s", 900)),
        fetch_full_text=bool(data.get("fetch_full_text", False)),
        enabled=bool(data.get("enabled", True)),
        health=health,
    )


def new_feed_id(feed: FeedIn) -> str:
    if feed.id:
        return feed.id
    from urllib.parse import urlsplit

    parts = urlsplit(feed.url)
    basis = feed.name or f"{(parts.hostname or '').removeprefix('www.')}{parts.path}"
    return slug(basis) or slug(parts.hostname or "") or "feed"


class FeedStore:
    def __init__(self, redis: Any) -> None:
        self.redis: Any = redis

    async def all(self) -> list[FeedOut]:
        defs: dict[str, str] = await self.redis.hgetall(keys.FEEDS)
        ids = sorted(defs)
        states = await self.redis.mget([keys.feed_state_key(i) for i in ids]) if ids else []
        return [_out(defs[i], s) for i, s in zip(ids, states, strict=True)]

    async def get(self, feed_id: str) -> FeedOut | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.FEEDS, feed_id)
            pipe.get(keys.feed_state_key(feed_id))
            definition, state = await pipe.execute()
        return _out(definition, state) if definition else None

    async def add(self, feed: FeedIn, *, now: datetime) -> FeedOut | None:
        """The new feed (due now); None when its id is taken."""
        feed_id = new_feed_id(feed)
        data = {**feed.model_dump(), "id": feed_id, "name": feed.name or _host(feed.url)}
        if not await self.redis.hsetnx(keys.FEEDS, feed_id, _def_json(data)):
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.feed_state_key(feed_id), _initial_state(feed.url, now))
            pipe.zadd(keys.FEEDS_DUE, {feed_id: now.timestamp()})
            await pipe.execute()
        return await self.get(feed_id)

    async def update(self, feed_id: str, patch: FeedPatch, *, now: datetime) -> FeedOut | None:
        raw = await self.redis.hget(keys.FEEDS, feed_id)
        if raw is None:
            return None
        data = json.loads(raw)
        changes = patch.model_dump(exclude_unset=True, exclude_none=True)
        new_url = "url" in changes and changes["url"] != data["url"]
        data.update(changes)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.FEEDS, feed_id, _def_json(data))
            if new_url:  # another resource: its validators and backoff no longer apply
                pipe.set(keys.feed_state_key(feed_id), _initial_state(data["url"], now))
                pipe.zadd(keys.FEEDS_DUE, {feed_id: now.timestamp()})
            await pipe.execute()
        return await self.get(feed_id)

    async def remove(self, feed_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.FEEDS, feed_id)
            pipe.delete(keys.feed_state_key(feed_id))
            pipe.zrem(keys.FEEDS_DUE, feed_id)
            removed, _, _ = await pipe.execute()
        return bool(removed)

    async def poll_now(self, feed_id: str, *, now: datetime) -> bool:
        """Make the feed due now; False when it has no due entry (gone)."""
        changed = await self.redis.zadd(
            keys.FEEDS_DUE, {feed_id: now.timestamp()}, xx=True, ch=True
        )
        if changed:
            return True
        return await self.redis.zscore(keys.FEEDS_DUE, feed_id) is not None


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url
