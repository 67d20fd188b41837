"""Reads the pipeline's state from Redis for ``/readyz`` and ``/metrics``.

Lag is what a consumer group has not read yet: XINFO GROUPS's ``lag`` on Redis ≥ 7, else
counted with XRANGE after the group's last-delivered id (bounded by ``cap``), plus nothing
for pending entries (those are read, not yet acked; XINFO's ``pending`` says how many).

Owns: these reads. Must not: write anything.
"""

from __future__ import annotations

import json
from typing import Any

from redis.exceptions import ResponseError

from api.metrics import Snapshot
from core import keys
from core.store import ItemStore

# The streams and their consumer groups whose lag matters.
GROUPS: tuple[tuple[str, str], ...] = (
    (keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER),
    (keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER),
)
LAG_CAP = 1_000_000


async def group_lag(redis: Any, stream: str, group: str, cap: int = LAG_CAP) -> int | None:
    """Entries ``group`` has not read yet; None when the group does not exist (yet)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return None
    for info in groups:
        if info.get("name") != group:
            continue
        lag = info.get("lag")
        if lag is not None:
            return int(lag)
        last = info.get("last-delivered-id", "0-0")
        rest = await redis.xrange(stream, f"({last}", "+", count=cap)
        return len(rest)
    return None


async def snapshot(redis: Any, store: ItemStore) -> Snapshot:
    snap = Snapshot(stats=await store.stats(), items=await store.count())
    for stream, group in GROUPS:
        lag = await group_lag(redis, stream, group)
        if lag is not None:
            snap.lag[(stream, group)] = lag
        snap.dead[stream] = int(await redis.xlen(keys.dead_letter(stream)))
    feed_ids: list[str] = await redis.hkeys(keys.FEEDS)
    snap.feeds = len(feed_ids)
    if feed_ids:
        states = await redis.mget([keys.feed_state_key(f) for f in feed_ids])
        for raw in states:
            if not raw:
                continue
            state = json.loads(raw)
            if state.get("gone") or int(state.get("consecutive_failures") or 0) > 0:
                snap.broken_feeds += 1
    return snap
