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

A poll costs two Redis calls, each one script (atomic) pipelined with the other polls'
calls on one connection (``core.multiplex``): take the lease and read the feed and its
state; then save the state, reschedule and release the lease.
- A **host slot** per host (SET NX PX) spaces requests to one host across every process.

Owns: that persistence. Must not: decide when a feed is due (``decider``) or fetch.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from core import keys
from core.connection import run_script
from core.multiplex import Multiplexed
from ingestor.decider import FeedState, initial_state
from ingestor.feeds import FeedDef

# Compare-and-delete: release a lease only if we still hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Take the lease (KEYS[1]) with token ARGV[1] for ARGV[2] ms; if taken, the feed's
# definition (KEYS[2], field ARGV[3]) and state (KEYS[3]); {0} when another holds it. With
# ARGV[4] (a time), also {0} unless the feed is still due by then in the due set (KEYS[4]):
# a tick's due list may be stale by the time it leases (another process polled the feed and
# rescheduled it in between, or the feed was removed).
_LEASE_AND_READ = """
if ARGV[4] ~= '' then
  local due = redis.call('ZSCORE', KEYS[4], ARGV[3])
  if not due or tonumber(due) > tonumber(ARGV[4]) then return {0} end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
return {1, redis.call('HGET', KEYS[2], ARGV[3]), redis.call('GET', KEYS[3])}
"""

# Store the state (KEYS[1] = ARGV[1]); reschedule feed ARGV[2] in the due set (KEYS[2]) at
# ARGV[3], or drop it when ARGV[3] is '' (gone); release the lease (KEYS[3]) if ARGV[4]
# is its holder's token.
_SAVE = """
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
return 1
"""


# Take a host's slot (KEYS[1]) for ARGV[1] ms: -1 when taken, else the ms it is held for.
_HOST_SLOT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return -1 end
local held = redis.call('PTTL', KEYS[1])
if held < 1 then held = 1 end
return held
"""


_CACHE_MAX = 100_000  # feeds whose last definition and state are kept parsed


def _parsed(cache: dict[str, tuple[str, Any]], key: str, raw: str, parse: Any) -> Any:
    """``parse(raw)``, reused while ``key``'s JSON stays the same: a poll reads the feed's
    definition and state, and validating both was a quarter of a 304's CPU. Both models
    are frozen, so one object can serve every poll."""
    hit = cache.get(key)
    if hit is not None and hit[0] == raw:
        return hit[1]
    value = parse(raw)
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = (raw, value)
    return value


class FeedRegistry:
    def __init__(self, redis: Any) -> None:
        self.redis: Any = redis
        self._defs: dict[str, tuple[str, FeedDef]] = {}
        self._states: dict[str, tuple[str, FeedState]] = {}
        self._line = Multiplexed(redis)  # the polls' calls share one connection
        self._lease_and_read = redis.register_script(_LEASE_AND_READ)
        self._save = redis.register_script(_SAVE)
        self._release = redis.register_script(_RELEASE)
        self._host_slot = redis.register_script(_HOST_SLOT)

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

    async def save_state(
        self, feed_id: str, state: FeedState, *, release_token: str | None = None
    ) -> None:
        """Store the state and reschedule (a gone feed leaves the schedule); with
        ``release_token``, release the lease in the same call."""
        due_at = "" if state.gone else repr(state.next_check_at.timestamp())
        raw = state.model_dump_json()
        await run_script(
            self._line,
            self._save,
            [keys.feed_state_key(feed_id), keys.FEEDS_DUE, keys.feed_lease_key(feed_id)],
            [raw, feed_id, due_at, release_token or ""],
        )
        self._states[feed_id] = (raw, state)  # what the next poll will read, unless changed

    async def due(self, now: datetime, limit: int = 1000) -> list[str]:
        ids: list[str] = await self.redis.zrangebyscore(
            keys.FEEDS_DUE, "-inf", now.timestamp(), start=0, num=limit
        )
        return ids

    async def make_due(self, feed_id: str, now: datetime) -> None:
        await self.redis.zadd(keys.FEEDS_DUE, {feed_id: now.timestamp()}, xx=True)

    # -- locks ---------------------------------------------------------------------------
    async def lease_and_read(
        self, feed_id: str, ttl_s: float, *, due_by: datetime | None = None
    ) -> tuple[str | None, FeedDef | None, FeedState | None]:
        """Take the feed's lease for ``ttl_s`` and read its definition and state, in one
        call: (lease token, definition, state), or (None, None, None) when another process
        holds the lease, or, given ``due_by``, when the feed is no longer due by then (a
        scheduler's tick passes its ``now``: another process may have polled the feed since
        the tick read the due list)."""
        token = f"{random.getrandbits(64):016x}"  # unique, as a holder's mark (not a secret)
        got = await run_script(
            self._line,
            self._lease_and_read,
            [
                keys.feed_lease_key(feed_id),
                keys.FEEDS,
                keys.feed_state_key(feed_id),
                keys.FEEDS_DUE,
            ],
            [
                token,
                max(int(ttl_s * 1000), 1),
                feed_id,
                "" if due_by is None else repr(due_by.timestamp()),
            ],
        )
        if not got[0]:
            return None, None, None
        raw_def, raw_state = got[1], got[2]
        feed = (
            _parsed(self._defs, feed_id, raw_def, FeedDef.model_validate_json) if raw_def else None
        )
        state = (
            _parsed(self._states, feed_id, raw_state, FeedState.model_validate_json)
            if raw_state
            else None
        )
        return token, feed, state

    async def release_lease(self, feed_id: str, token: str) -> None:
        await run_script(self._line, self._release, [keys.feed_lease_key(feed_id)], [token])

    async def host_slot(self, host: str, spacing_s: float) -> float:
        """Take the host's slot: 0.0 when taken, else the seconds to wait before retrying."""
        ttl_ms = await run_script(
            self._line,
            self._host_slot,
            [keys.host_slot_key(host)],
            [max(int(spacing_s * 1000), 1)],
        )
        return 0.0 if ttl_ms < 0 else int(ttl_ms) / 1000
