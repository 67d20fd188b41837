"""The item store in Redis: items by stable id, plus time indexes for filtered queries.

Layout (names in ``core.keys``):
- ``nm:item:{id}``: a hash with ``item`` (JSON), ``labels`` (JSON), ``ingested_at``,
  ``classified_at``, ``member`` (the item's index member), ``label_idx`` (JSON list of the
  label indexes it is in) and ``applied`` (the id of the last classification event applied).
- Time indexes are sorted sets whose members all score 0 and read
  ``{published epoch ms, 15 digits}:{id}``, so lexicographic order is time order and a
  member is a unique, stable cursor. One index per topic, official, country, feed, plus
  "all" and "relevant". A query walks the smallest matching index newest-first with
  ZREVRANGEBYLEX and checks the other filters with ZMSCORE: it never scans every item.

Writes are idempotent: ``add`` stores an item once (later calls return False); ``set_labels``
applies one classification event once (a redelivered event is a no-op), inside a
WATCH/MULTI transaction so indexes and the item never disagree.

Owns: item persistence and queries. Must not: classify, publish events or know HTTP.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import WatchError

from core import keys
from core.errors import BadCursor
from core.models import Item, Labels, StoredItem, item_id_for

Outbox = Callable[[Any], None]  # queues commands on the store's MULTI pipeline
ItemOutbox = Callable[[Any, Item], None]  # the same, given the item as stored


class Upsert(enum.Enum):
    NEW = "new"
    UPDATED = "updated"
    SAME = "same"


# Moves an item's member in every index it is in (base and label indexes), atomically.
_REINDEX = """
local idx = cjson.decode(redis.call('HGET', KEYS[1], 'idx') or '[]')
local lidx = cjson.decode(redis.call('HGET', KEYS[1], 'label_idx') or '[]')
for _, list in ipairs({idx, lidx}) do
  for _, k in ipairs(list) do
    redis.call('ZREM', k, ARGV[1])
    redis.call('ZADD', k, 0, ARGV[2])
  end
end
return 1
"""

_MEMBER = re.compile(r"^\d{15}:[A-Za-z0-9_.-]{1,128}$")


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def index_member(item: Item) -> str:
    """The member an item has in every time index (time-ordered, unique)."""
    return f"{max(_ms(item.published), 0):015d}:{item.id}"


def content_digest(item: Item) -> str:
    """What makes a stored item "changed": title, summary, text, link and dates."""
    basis = json.dumps(
        [item.title, item.summary, item.text, item.url, str(item.published), str(item.updated)]
    )
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _aliases(item: Item) -> list[str]:
    out = []
    if item.guid:
        out.append(keys.alias_key("guid", item_id_for(guid=item.guid)))
    if item.url:
        out.append(keys.alias_key("url", item_id_for(url=item.url)))
    return out


def _add_json(current: str | None, value: str) -> str:
    values = json.loads(current or "[]")
    if value not in values:
        values.append(value)
    return json.dumps(values)


def label_indexes(labels: Labels) -> list[str]:
    out = [keys.index_key("topic", t) for t in labels.topics]
    out += [keys.index_key("official", o) for o in labels.officials]
    out += [keys.index_key("country", c) for c in labels.countries]
    if labels.relevant:
        out.append(keys.INDEX_RELEVANT)
    return sorted(set(out))


@dataclass(frozen=True)
class ItemQuery:
    """Filters of ``GET /v1/items``; every given filter must hold (AND)."""

    topic: str | None = None
    official: str | None = None
    country: str | None = None
    feed: str | None = None
    relevant: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    cursor: str | None = None

    def positive_indexes(self) -> list[str]:
        out = []
        if self.topic:
            out.append(keys.index_key("topic", self.topic))
        if self.official:
            out.append(keys.index_key("official", self.official))
        if self.country:
            out.append(keys.index_key("country", self.country))
        if self.feed:
            out.append(keys.index_key("feed", self.feed))
        if self.relevant:
            out.append(keys.INDEX_RELEVANT)
        return out or [keys.INDEX_ALL]


@dataclass(frozen=True)
class Page:
    items: list[StoredItem]
    next_cursor: str | None


class ItemStore:
    """Items and their indexes in Redis. The clock is passed in by callers (``now``)."""

    def __init__(self, redis: Any) -> None:
        self.redis: Any = redis  # RESP2 replies, decoded: see core.bus.Bus

    async def add(self, item: Item, *, now: datetime, outbox: Outbox | None = None) -> bool:
        """Store a new item; False (and no change) when it is already stored (by id, guid or
        canonical URL). ``outbox`` queues more commands in the same transaction."""
        result = await self.upsert(
            item, now=now, on_new=(lambda pipe, _: outbox(pipe)) if outbox else None, update=False
        )
        return result is Upsert.NEW

    async def upsert(
        self,
        item: Item,
        *,
        now: datetime,
        on_new: ItemOutbox | None = None,
        on_update: ItemOutbox | None = None,
        update: bool = True,
    ) -> Upsert:
        """Store ``item`` once. The same guid or canonical URL (from any feed) is the same item:
        unchanged content, or a copy from another feed → ``SAME``; changed title, text,
        summary, link or dates from the feed that first gave it → ``UPDATED`` (stored under the
        first id, re-indexed). The outbox callbacks queue an event in the
        same transaction, receiving the item as stored."""
        aliases = _aliases(item)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(keys.item_key(item.id), *aliases)
                    existing = await self._resolve(pipe, item.id, aliases)
                    if existing is None:
                        pipe.multi()
                        self._queue_new(pipe, item, now, aliases)
                        if on_new is not None:
                            on_new(pipe, item)
                        await pipe.execute()
                        return Upsert.NEW
                    key = keys.item_key(existing)
                    await pipe.watch(key)
                    digest, member, idx, feed = await pipe.hmget(
                        key, "digest", "member", "idx", "feed"
                    )
                    stored = item.model_copy(update={"id": existing})
                    feed_idx = keys.index_key("feed", item.feed_id)
                    # Another feed's copy of a stored item is a duplicate, not an update.
                    same_feed = feed == item.feed_id
                    if not update or not same_feed or digest == content_digest(stored):
                        pipe.multi()
                        pipe.zadd(feed_idx, {member: 0})  # seen in one more feed
                        pipe.hset(key, "idx", _add_json(idx, feed_idx))
                        await pipe.execute()
                        return Upsert.SAME
                    pipe.multi()
                    self._queue_update(pipe, stored, member, _add_json(idx, feed_idx))
                    if on_update is not None:
                        on_update(pipe, stored)
                    await pipe.execute()
                    return Upsert.UPDATED
                except WatchError:
                    continue

    async def _resolve(self, pipe: Any, item_id: str, aliases: list[str]) -> str | None:
        if await pipe.exists(keys.item_key(item_id)):
            return item_id
        for alias in aliases:
            target = await pipe.get(alias)
            if target is not None and await pipe.exists(keys.item_key(target)):
                return str(target)
        return None

    def _queue_new(self, pipe: Any, item: Item, now: datetime, aliases: list[str]) -> None:
        member = index_member(item)
        base = [keys.INDEX_ALL, keys.index_key("feed", item.feed_id)]
        pipe.hset(
            keys.item_key(item.id),
            mapping={
                "item": item.model_dump_json(),
                "digest": content_digest(item),
                "feed": item.feed_id,
                "ingested_at": now.astimezone(UTC).isoformat(),
                "member": member,
                "idx": json.dumps(base),
                "label_idx": "[]",
            },
        )
        for index in base:
            pipe.zadd(index, {member: 0})
        for alias in aliases:
            pipe.set(alias, item.id)
        pipe.hincrby(keys.STATS, "items_ingested", 1)

    def _queue_update(self, pipe: Any, item: Item, old_member: str, idx_json: str) -> None:
        key = keys.item_key(item.id)
        member = index_member(item)
        pipe.hset(
            key,
            mapping={
                "item": item.model_dump_json(),
                "digest": content_digest(item),
                "member": member,
                "idx": idx_json,
            },
        )
        if member != old_member:  # the published time changed: move it in every index
            pipe.eval(_REINDEX, 1, key, old_member, member)
        pipe.hincrby(keys.STATS, "items_updated", 1)

    async def set_labels(
        self,
        item_id: str,
        labels: Labels,
        *,
        event_id: str,
        now: datetime,
        outbox: Outbox | None = None,
    ) -> bool:
        """Apply one classification once. False when the item is unknown or already applied.

        ``outbox`` queues more commands (an event to publish) in the same transaction.
        """
        key = keys.item_key(item_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    applied, member, old_idx = await pipe.hmget(
                        key, "applied", "member", "label_idx"
                    )
                    if member is None or applied == event_id:
                        await pipe.unwatch()
                        return False
                    new_idx = label_indexes(labels)
                    pipe.multi()
                    pipe.hset(
                        key,
                        mapping={
                            "labels": labels.model_dump_json(),
                            "classified_at": now.astimezone(UTC).isoformat(),
                            "applied": event_id,
                            "label_idx": json.dumps(new_idx),
                        },
                    )
                    for index in set(json.loads(old_idx or "[]")) - set(new_idx):
                        pipe.zrem(index, member)
                    for index in new_idx:
                        pipe.zadd(index, {member: 0})
                    pipe.hincrby(keys.STATS, "items_classified", 1)
                    if outbox is not None:
                        outbox(pipe)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def exists(self, item_id: str) -> bool:
        return bool(await self.redis.exists(keys.item_key(item_id)))

    async def get(self, item_id: str) -> StoredItem | None:
        row = await self.redis.hgetall(keys.item_key(item_id))
        return _stored(row) if row else None

    async def get_many(self, item_ids: Sequence[str]) -> list[StoredItem]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for item_id in item_ids:
                pipe.hgetall(keys.item_key(item_id))
            rows = await pipe.execute()
        return [_stored(row) for row in rows if row]

    async def count(self) -> int:
        n: int = await self.redis.zcard(keys.INDEX_ALL)
        return n

    async def stats(self) -> dict[str, int]:
        raw = await self.redis.hgetall(keys.STATS)
        return {k: int(v) for k, v in raw.items()}

    async def query(self, q: ItemQuery) -> Page:
        """Newest first, every filter applied, ``q.limit`` items and the next page's cursor."""
        if q.cursor is not None and not _MEMBER.match(q.cursor):
            raise BadCursor(f"cursor {q.cursor!r} was not issued by this store")
        indexes = q.positive_indexes()
        sizes = [await self.redis.zcard(index) for index in indexes]
        driver = indexes[sizes.index(min(sizes))]
        others = [index for index in indexes if index != driver]
        hi = _upper_bound(q)
        lo = f"[{max(_ms(q.since), 0):015d}" if q.since else "-"
        chunk = max(q.limit * 2, 100)
        found: list[str] = []
        while len(found) < q.limit:
            members: list[str] = await self.redis.zrevrangebylex(driver, hi, lo, 0, chunk)
            if not members:
                break
            kept = await self._filter(members, others, exclude_relevant=q.relevant is False)
            found.extend(kept[: q.limit - len(found)])
            hi = f"({(found[-1] if len(found) == q.limit else members[-1])}"
            if len(members) < chunk:
                break
        items = await self.get_many([m.split(":", 1)[1] for m in found])
        more = len(found) == q.limit and await self._has_more(driver, found[-1], lo)
        return Page(items=items, next_cursor=found[-1] if more else None)

    async def _filter(
        self, members: list[str], others: list[str], *, exclude_relevant: bool
    ) -> list[str]:
        if not others and not exclude_relevant:
            return members
        async with self.redis.pipeline(transaction=False) as pipe:
            for index in others:
                pipe.zmscore(index, members)
            if exclude_relevant:
                pipe.zmscore(keys.INDEX_RELEVANT, members)
            replies = await pipe.execute()
        positive = replies[: len(others)]
        negative = replies[len(others) :]
        return [
            m
            for i, m in enumerate(members)
            if all(r[i] is not None for r in positive) and all(r[i] is None for r in negative)
        ]

    async def _has_more(self, driver: str, last: str, lo: str) -> bool:
        nxt = await self.redis.zrevrangebylex(driver, f"({last}", lo, 0, 1)
        return bool(nxt)


def _upper_bound(q: ItemQuery) -> str:
    if q.cursor is not None:
        return f"({q.cursor}"
    if q.until is not None:
        return f"({_ms(q.until) + 1:015d}"  # members of ms == until are included
    return "+"


def _stored(row: dict[str, str]) -> StoredItem:
    labels = row.get("labels")
    classified = row.get("classified_at")
    return StoredItem(
        item=Item.model_validate_json(row["item"]),
        labels=Labels.model_validate_json(labels) if labels else None,
        classified_at=datetime.fromisoformat(classified) if classified else None,
        ingested_at=datetime.fromisoformat(row["ingested_at"]),
    )
