"""The item store in Redis: items by stable id, plus time indexes for filtered queries.

Layout (names in ``core.keys``):
- ``nm:item:{id}``: a hash with ``item`` (JSON), ``card`` (JSON of the list-view fields,
  ``CARD_FIELDS``, so list pages need not parse whole items), ``labels`` (JSON), ``brief``
  (the labels without their evidence, as list pages show them: ``brief_json``), ``ingested_at``,
  ``classified_at``, ``member`` (the item's index member), ``label_idx`` (JSON list of the
  label indexes it is in), ``applied`` (the id of the last classification event applied)
  and, when ``upsert_many`` stored it, ``batch`` (that call's token).
- Time indexes are sorted sets whose members all score 0 and read
  ``{published epoch ms, 15 digits}:{id}``, so lexicographic order is time order and a
  member is a unique, stable cursor. One index per topic, official, country, feed, plus
  "all" and "relevant". A query walks the smallest matching index newest-first with
  ZREVRANGEBYLEX and checks the other filters with ZMSCORE: it never scans every item.
- Word indexes (``nm:idx:word:{word}``, same members) hold every classified item whose title
  or text has the word (``words``: case-folded, accents stripped, 2–40 letters or digits), so
  ``q`` is one more index to intersect. They are listed in the item's ``idx`` and move with
  it. ``set_labels`` adds them, once per content (the hash's ``words`` holds the ``digest``
  indexed), not ingestion: a text has ~300 distinct words, and those index entries were most
  of Redis's work in a poll, paid before anyone could query the item anyway (as reader's
  search index is its own step). An update drops the old text's words; the new text's come
  with its classification. So ``q`` finds an item once it is classified.
- ``nm:idx:score`` scores each classified item's member by its labels' score (``min_score``).
- Stories: an item's ``story`` field (from ``set_story``, or ``Labels.story_id`` once the
  classifier gives one) puts it in ``nm:idx:story:{id}``; ``nm:stories`` scores each story
  id by its newest item's published time (epoch ms).
- ``nm:labels:{kind}`` (sets) name every label ever applied, for the taxonomy's counts.

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
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.exceptions import WatchError

from core import keys
from core.connection import run_script
from core.errors import BadCursor
from core.events import StreamEntry
from core.models import Item, Labels, StoredItem, item_id_for
from core.multiplex import Multiplexed

Outbox = Callable[[Any], None]  # queues commands on the store's MULTI pipeline
ItemOutbox = Callable[[Any, Item], None]  # the same, given the item as stored


# Given the item as stored: the entry announcing it, or None for none. An entry that carries
# the item names the field (``StreamEntry.carries``); the store puts the item's JSON there.
ItemEvent = Callable[[Item], StreamEntry | None]


class Upsert(enum.Enum):
    NEW = "new"
    UPDATED = "updated"
    SAME = "same"


# Key names only this module uses (the rest are in core.keys).
INDEX_SCORE = f"{keys.PREFIX}:idx:score"
STORIES = f"{keys.PREFIX}:stories"
# item id → its list entry, without evidence (see _LISTED). The name changed when list
# entries lost their evidence: entries of the old hash ("nm:listed") are never read.
LISTED = f"{keys.PREFIX}:listed:brief"
# The fields of an item a list page shows (the API's ItemOut without its times and labels).
CARD_FIELDS: set[str] = {
    *("id", "feed_id", "title", "url", "outlet", "language", "summary", "published")
}
_CARD_ROW = ("card", "ingested_at", "classified_at", "brief", "labels")
LABEL_KINDS = ("topic", "official", "country", "organisation")


def labels_key(kind: str) -> str:
    """The set of every label of ``kind`` ever applied."""
    return f"{keys.PREFIX}:labels:{kind}"


# List pages are assembled by Redis: each item's list entry, the API's ItemOut JSON with its
# labels brief (no evidence: ``brief_json``), is kept ready in the hash LISTED (item id →
# JSON), so a page is one HMGET and a join (rebuilding the JSON from the card, times and
# labels on every read cost Redis 2-3x more, and Python far more). _LISTED's card_json
# builds it from an item's _CARD_ROW (card, ingested_at, classified_at, brief, labels): the
# card with the times (RFC 3339, "…Z" as pydantic writes them) and the labels spliced in, as
# api/listing.py's card_out does (tests/api/test_listing.py checks both against ItemOut):
# the brief labels, or with ``evidence`` the whole labels (such a page is assembled on read,
# never from LISTED). Every write of those fields runs _COMPOSE in its transaction. An item
# stored before LISTED existed is assembled on read. page_json gives {the items' JSON
# joined by commas}, or, when one cannot be assembled (no card: stored before cards
# existed; no brief labels: classified before they existed; a time not in UTC), {false,
# every item's _CARD_ROW flattened} for Python to render. An item with no row (deleted) is
# left out, as get_many does.
_LISTED = """
local ROW = {'card', 'ingested_at', 'classified_at', 'brief', 'labels'}  -- _CARD_ROW
local function utc(s)
  if string.sub(s, -6) ~= '+00:00' then return nil end
  return string.sub(s, 1, -7)
end
-- Appends the row's JSON in pieces to parts (table.concat then copies once): true, and
-- nothing appended for an item with no row; false when it cannot be assembled. The labels
-- are the brief ones, or with evidence the whole ones.
local function card_json(row, parts, evidence)
  local card, at, classified, labels = row[1], row[2], row[3], row[4]
  if not at then return true end
  if evidence then
    labels = row[5]
  elseif not labels and row[5] then
    return false  -- classified before brief labels were stored
  end
  if not card or string.sub(card, -1) ~= '}' then return false end
  local ingested = utc(at)
  if not ingested then return false end
  local n = #parts
  parts[n + 1] = string.sub(card, 1, -2)
  parts[n + 2] = ',"ingested_at":"'
  parts[n + 3] = ingested
  if classified and classified ~= '' then
    local done = utc(classified)
    if not done then return false end
    parts[n + 4] = 'Z","classified_at":"'
    parts[n + 5] = done
    parts[n + 6] = 'Z","labels":'
  else
    parts[n + 4] = 'Z","classified_at":null,"labels":'
    parts[n + 5] = ''
    parts[n + 6] = ''
  end
  if not labels or labels == '' then labels = 'null' end
  parts[n + 7] = labels
  parts[n + 8] = '}'
  return true
end
-- The page of the items ids (their hashes: prefix .. id), with LISTED at listed_key;
-- evidence: the whole labels (assembled from the rows, not LISTED).
local function page_json(listed_key, prefix, ids, evidence)
  if #ids == 0 then return {''} end
  local ready = {}
  if not evidence then ready = redis.call('HMGET', listed_key, unpack(ids)) end
  local parts = {}
  for i = 1, #ids do
    local one = ready[i]
    if not one then
      local assembled = {}
      local row = redis.call('HMGET', prefix .. ids[i], unpack(ROW))
      if not card_json(row, assembled, evidence) then
        local flat = {false}
        for _, id in ipairs(ids) do
          local row = redis.call('HMGET', prefix .. id, unpack(ROW))
          for j = 1, #ROW do flat[#flat + 1] = row[j] or false end
        end
        return flat
      end
      one = table.concat(assembled)
    end
    if one ~= '' then parts[#parts + 1] = one end
  end
  return {table.concat(parts, ',')}
end
"""

# Rebuilds the list entry of the item ARGV[1] (hash KEYS[1]; LISTED is KEYS[2]), in the
# transaction that changed its row.
_COMPOSE = (
    _LISTED
    + """
local parts = {}
if card_json(redis.call('HMGET', KEYS[1], unpack(ROW)), parts, false) and #parts > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], table.concat(parts))
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
"""
)

# The page of the items ARGV[3..] (LISTED is KEYS[1]; item key = ARGV[1] .. id; ARGV[2]:
# "1" for the whole labels, evidence included).
_CARD_ROWS = _LISTED + "\nreturn page_json(KEYS[1], ARGV[1], {unpack(ARGV, 3)}, ARGV[2] == '1')\n"

# The common list page (one index, no other filter) in one round trip: first a guard's
# probes (read commands: KEYS[2 + i] is probe i's key; from ARGV[7], per probe its command,
# its number of arguments and those; ARGV[6]: how many probes), then the index KEYS[1]'s
# members newest first from ARGV[1] down to ARGV[2], at most ARGV[3] (= page size + 1, to
# know whether a next page exists), then page_json (LISTED is KEYS[2]) of the first
# ARGV[3] - 1 items (item key = ARGV[4] .. the id after the member's "{15 digits}:"; ARGV[5]:
# "1" for the whole labels, evidence included).
# Returns {probe replies, members, page_json...}.
_ONE_INDEX_PAGE = (
    _LISTED
    + """
local probes, a = {}, 7
for i = 1, tonumber(ARGV[6]) do
  local nargs = tonumber(ARGV[a + 1])
  probes[i] = redis.call(ARGV[a], KEYS[i + 2], unpack(ARGV, a + 2, a + 1 + nargs))
  a = a + 2 + nargs
end
local n = tonumber(ARGV[3])
local members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, n)
local ids = {}
for i = 1, math.min(#members, n - 1) do ids[i] = string.sub(members[i], 17) end
local out = page_json(KEYS[2], ARGV[4], ids, ARGV[5] == '1')
table.insert(out, 1, members)
table.insert(out, 1, probes)
return out
"""
)

# Adds one member (score 0) to every key given.
_ZADD_ALL = """
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[1]) end
return #KEYS
"""

# Moves an item's member in every index it is in (base and label indexes, and the score
# index with its score), atomically.
_REINDEX = """
local idx = cjson.decode(redis.call('HGET', KEYS[1], 'idx') or '[]')
local lidx = cjson.decode(redis.call('HGET', KEYS[1], 'label_idx') or '[]')
for _, list in ipairs({idx, lidx}) do
  for _, k in ipairs(list) do
    redis.call('ZREM', k, ARGV[1])
    redis.call('ZADD', k, 0, ARGV[2])
  end
end
local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
if s then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[2], s, ARGV[2])
end
return 1
"""

# upsert_many's write of a batch, atomic: resolve each item (its key, or an alias to a stored
# item, means already stored) and store every one that resolves to nothing: its hash, its list
# entry (as _COMPOSE assembles it for an item not yet classified), its two base indexes, its
# aliases and its event, then the count. One call per batch: the client packs one command
# and reads one reply, the item's JSON crosses the wire once (the event that carries it is
# spliced together here), and Redis runs no script text per item (EVAL per item, with the
# WATCH/MULTI it replaced, was most of a first poll's Redis and client CPU).
# KEYS: per item, its key then its alias keys. ARGV[1..6]: the item key prefix, this call's
# batch token, LISTED, INDEX_ALL, STATS, ingested_at (as _utc_iso gives it); then per item a
# record of 15 + 2 * m values: its number of keys, id, feed id, feed index, member, item
# JSON, card JSON, digest, idx JSON, event stream ('' for no event), its MAXLEN, the field
# that carries the item ('' for none) and the text before and after the item's JSON in it,
# m, then m more field-value pairs. Returns each item's code: 0 stored now, 1 already
# stored, 2 stored by this token before (a call whose reply was lost ran; the item counts as
# new, its event was published).
_STORE_NEW = """
local prefix, token, listed, all, stats, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local suffix = ',"ingested_at":"' .. string.sub(at, 1, -7) ..
  'Z","classified_at":null,"labels":null}'
local out, k, a, stored = {}, 1, 7, 0
while a <= #ARGV do
  local n, id, member, item, card = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 4], ARGV[a + 5],
    ARGV[a + 6]
  local m = tonumber(ARGV[a + 14])
  local code = 0
  if redis.call('EXISTS', KEYS[k]) == 1 then
    code = redis.call('HGET', KEYS[k], 'batch') == token and 2 or 1
  end
  local j = k + 1
  while code == 0 and j < k + n do
    local target = redis.call('GET', KEYS[j])
    if target ~= false and redis.call('EXISTS', prefix .. target) == 1 then code = 1 end
    j = j + 1
  end
  if code == 0 then
    redis.call('HSET', KEYS[k], 'item', item, 'card', card, 'digest', ARGV[a + 7],
      'feed', ARGV[a + 2], 'ingested_at', at, 'member', member, 'idx', ARGV[a + 8],
      'label_idx', '[]', 'batch', token)
    redis.call('HSET', listed, id, string.sub(card, 1, -2) .. suffix)
    redis.call('ZADD', all, 0, member)
    redis.call('ZADD', ARGV[a + 3], 0, member)
    for x = k + 1, k + n - 1 do redis.call('SET', KEYS[x], id) end
    if ARGV[a + 9] ~= '' then
      local entry = {ARGV[a + 9], 'MAXLEN', '~', ARGV[a + 10], '*'}
      for f = a + 15, a + 14 + 2 * m do entry[#entry + 1] = ARGV[f] end
      if ARGV[a + 11] ~= '' then
        entry[#entry + 1] = ARGV[a + 11]
        entry[#entry + 1] = ARGV[a + 12] .. item .. ARGV[a + 13]
      end
      redis.call('XADD', unpack(entry))
    end
    stored = stored + 1
  end
  out[#out + 1] = code
  k = k + n
  a = a + 15 + 2 * m
end
if stored > 0 then redis.call('HINCRBY', stats, 'items_ingested', stored) end
return out
"""
BATCH_MAX = 200  # items per _STORE_NEW call: Redis serves no one else while a script runs

_WORD = re.compile(r"[^\W_]{2,40}")
MAX_WORDS = 3000  # distinct words indexed per item (a pathological text cannot flood Redis)
# English function words: in nearly every item, so their indexes would each hold every item
# (a third of all index entries) while narrowing no search. They are neither indexed nor
# searched for.
STOPWORDS: frozenset[str] = frozenset(
    """
    about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own said same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    """.split()  # noqa: SIM905 (one word list reads better as text)
)


def words(text: str) -> list[str]:
    """The searchable words of ``text``: case-folded, accents stripped, 2–40 letters or
    digits, not a ``STOPWORDS`` word, in first-seen order, at most ``MAX_WORDS``. Scripts
    written without spaces (Khmer, Lao) yield whole runs, not words."""
    if text.isascii():  # nothing to fold but case, no accents to strip (most news text)
        plain = text.lower()
    else:
        folded = unicodedata.normalize("NFKD", text.casefold())
        plain = "".join(c for c in folded if not unicodedata.combining(c))
    seen: dict[str, None] = {}
    for match in _WORD.finditer(plain):
        word = match.group(0)
        if word in STOPWORDS:
            continue
        seen.setdefault(word, None)
        if len(seen) >= MAX_WORDS:
            break
    return list(seen)


_WORD_PREFIX = keys.index_key("word", "")


def word_indexes(item: Item) -> list[str]:
    return [keys.index_key("word", w) for w in words(f"{item.title}\n{item.text or item.summary}")]


_MEMBER = re.compile(r"^\d{15}:[A-Za-z0-9_.-]{1,128}$")


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def index_member(item: Item) -> str:
    """The member an item has in every time index (time-ordered, unique)."""
    return f"{max(_ms(item.published), 0):015d}:{item.id}"


def card_json(item: Item) -> str:
    """The item's list-view fields (``CARD_FIELDS``) as JSON, stored beside the item so a
    list page is assembled from stored strings instead of parsing every item whole."""
    return item.model_dump_json(include=CARD_FIELDS)


def _json_bytes(item: Item, include: set[str] | None = None) -> bytes:
    """``model_dump_json`` as the UTF-8 bytes Redis stores: without decoding them to a str
    that the packer encodes again (both are copies of every byte of an item)."""
    return item.__pydantic_serializer__.to_json(item, include=include)


def _utc_iso(when: datetime) -> str:
    """How a time is stored in an item's hash (``ingested_at``, ``classified_at``)."""
    return when.astimezone(UTC).isoformat()


def _as_outbox(event: ItemEvent | None) -> ItemOutbox | None:
    """``upsert``'s pipeline callback for an ``ItemEvent``."""
    if event is None:
        return None

    def queue(pipe: Any, item: Item) -> None:
        entry = event(item)
        if entry is not None:
            fields = dict(entry.fields)
            if entry.carries is not None:
                name, before, after = entry.carries
                fields[name] = f"{before}{item.model_dump_json()}{after}"
            pipe.xadd(entry.stream, fields, maxlen=entry.maxlen, approximate=True)

    return queue


def brief_json(labels: Labels) -> str:
    """The labels as a list page shows them: without their evidence (``matches``), which a
    page carries only when asked (it is most of an item's labels: ~26 matches an item)."""
    return labels.model_dump_json(exclude={"matches"})


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


def _add_all_json(current: str | None, values: list[str]) -> str:
    listed: list[str] = json.loads(current or "[]")
    have = set(listed)
    return json.dumps(listed + [v for v in values if v not in have])


def _add_json(current: str | None, value: str) -> str:
    values = json.loads(current or "[]")
    if value not in values:
        values.append(value)
    return json.dumps(values)


def story_of(labels: Labels) -> str | None:
    """The story id the classifier gave, once ``Labels`` carries one (``story_id``)."""
    story = getattr(labels, "story_id", None)
    return story if isinstance(story, str) and story else None


def label_indexes(labels: Labels) -> list[str]:
    out = [keys.index_key("topic", t) for t in labels.topics]
    out += [keys.index_key("official", o) for o in labels.officials]
    out += [keys.index_key("country", c) for c in labels.countries]
    out += [keys.index_key("organisation", o) for o in labels.organisations]
    if labels.relevant:
        out.append(keys.INDEX_RELEVANT)
    story = story_of(labels)
    if story:
        out.append(keys.index_key("story", story))
    return sorted(set(out))


def _label_names(labels: Labels) -> Iterable[tuple[str, str]]:
    yield from (("topic", t) for t in labels.topics)
    yield from (("official", o) for o in labels.officials)
    yield from (("country", c) for c in labels.countries)
    yield from (("organisation", o) for o in labels.organisations)


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
    story: str | None = None
    min_score: float | None = None
    q: tuple[str, ...] = ()  # words (see ``words``); every one must occur
    # At most this many index members are examined; a page may then hold fewer than
    # ``limit`` items while ``next_cursor`` is set (None: walk until the page is full).
    max_scan: int | None = None

    def positive_indexes(self) -> list[str]:
        out = [keys.index_key("word", w) for w in self.q]
        if self.story:
            out.append(keys.index_key("story", self.story))
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


@dataclass(frozen=True, slots=True)
class Card:
    """One item of a list page as stored: JSON strings and timestamps, unparsed. ``card``
    is None for an item stored before cards existed (read it whole with ``get``)."""

    item_id: str
    card: str | None
    ingested_at: str
    classified_at: str | None
    brief: str | None  # the labels without evidence (``brief_json``)
    labels: str | None


class Guard(Protocol):
    """A check that must pass before a page is used (the API's key check): ``reads`` are
    the read-only commands it needs, each ``(command, key, *args)`` (one key, first);
    ``check`` raises on their replies to refuse the page."""

    def reads(self) -> list[tuple[str, ...]]: ...

    def check(self, replies: list[Any]) -> None: ...


@dataclass(frozen=True)
class CardPage:
    """A list page: ``joined`` (its items' ``ItemOut`` JSON, comma-separated, as Redis
    assembled it) or, when Redis could not assemble one of them, ``cards``."""

    cards: list[Card]
    next_cursor: str | None
    joined: str | None = None


class ItemStore:
    """Items and their indexes in Redis. The clock is passed in by callers (``now``)."""

    def __init__(self, redis: Any) -> None:
        self.redis: Any = redis  # RESP2 replies, decoded: see core.bus.Bus
        self._one_index_page = redis.register_script(_ONE_INDEX_PAGE)  # EVALSHA, loads once
        self._line = Multiplexed(redis)  # the page script's calls share one connection
        self._store_new_script = redis.register_script(_STORE_NEW)

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
                    digest, member, idx, feed, story = await pipe.hmget(
                        key, "digest", "member", "idx", "feed", "story"
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
                    self._queue_update(pipe, stored, member, _add_json(idx, feed_idx), story)
                    if on_update is not None:
                        on_update(pipe, stored)
                    await pipe.execute()
                    return Upsert.UPDATED
                except WatchError:
                    continue

    async def upsert_many(
        self,
        items: Iterable[Item],
        *,
        now: datetime,
        on_new: ItemEvent | None = None,
        on_update: ItemEvent | None = None,
    ) -> list[Upsert]:
        """``upsert`` for each of ``items``, in order, with the same result for each. The new
        ones are stored, with their events, by one atomic script call per ``BATCH_MAX`` items
        (``_STORE_NEW``): ``on_new`` is asked for every candidate's entry before the call,
        and an entry is written only for an item the call stores. Items already stored, or
        sharing an id, guid or URL with an earlier item of the batch, go through ``upsert``
        one by one afterwards (so the batch's own duplicates are stored once; ``on_update``
        announces changes).
        """
        batch = list(items)
        token = secrets.token_hex(8)
        results: list[Upsert | None] = [None] * len(batch)
        claimed: set[str] = set()
        twins: list[int] = []
        candidates: list[tuple[int, list[str]]] = []
        for n, item in enumerate(batch):
            own = [keys.item_key(item.id), *_aliases(item)]
            if claimed.intersection(own):
                twins.append(n)  # the batch's own duplicate: see it after the first is stored
            else:
                candidates.append((n, own))
            claimed.update(own)
        for start in range(0, len(candidates), BATCH_MAX):
            chunk = candidates[start : start + BATCH_MAX]
            codes = await self._store_new(batch, chunk, now, on_new, token)
            for (n, _own), code in zip(chunk, codes, strict=True):
                if code != 1:  # 0: stored now; 2: stored by this call already (a lost reply)
                    results[n] = Upsert.NEW
        single_new, single_update = _as_outbox(on_new), _as_outbox(on_update)
        for n in sorted([*(n for n, _own in candidates if results[n] is None), *twins]):
            results[n] = await self.upsert(
                batch[n], now=now, on_new=single_new, on_update=single_update
            )
        return [r if r is not None else Upsert.SAME for r in results]

    async def _store_new(
        self,
        batch: list[Item],
        candidates: list[tuple[int, list[str]]],
        now: datetime,
        on_new: ItemEvent | None,
        token: str,
    ) -> list[int]:
        """Run ``_STORE_NEW`` over ``candidates`` (index in ``batch``, [key, *aliases]): each
        one's code (0 stored now, 1 already stored, 2 stored by this token before)."""
        at = _utc_iso(now)
        all_keys: list[str] = []
        args: list[Any] = [keys.item_key(""), token, LISTED, keys.INDEX_ALL, keys.STATS, at]
        for n, own in candidates:
            item = batch[n]
            feed_idx = keys.index_key("feed", item.feed_id)
            entry = on_new(item) if on_new is not None else None
            all_keys += own
            args += (
                len(own),
                item.id,
                item.feed_id,
                feed_idx,
                index_member(item),
                _json_bytes(item),
                _json_bytes(item, CARD_FIELDS),
                content_digest(item),
                json.dumps([keys.INDEX_ALL, feed_idx]),
            )
            if entry is None:
                args += ("", 0, "", "", "", 0)
                continue
            args += (entry.stream, entry.maxlen)
            args += entry.carries or ("", "", "")
            args.append(len(entry.fields))
            for field_value in entry.fields.items():
                args += field_value
        codes = await run_script(self._line, self._store_new_script, all_keys, args)
        return [int(code) for code in codes]

    async def _resolve(self, pipe: Any, item_id: str, aliases: list[str]) -> str | None:
        if await pipe.exists(keys.item_key(item_id)):
            return item_id
        for alias in aliases:
            target = await pipe.get(alias)
            if target is not None and await pipe.exists(keys.item_key(target)):
                return str(target)
        return None

    def _queue_new(
        self,
        pipe: Any,
        item: Item,
        now: datetime,
        aliases: list[str],
        *,
        count: bool = True,
        batch: str | None = None,
    ) -> None:
        member = index_member(item)
        base = [keys.INDEX_ALL, keys.index_key("feed", item.feed_id)]  # words: set_labels
        fields = {
            "item": item.model_dump_json(),
            "card": card_json(item),
            "digest": content_digest(item),
            "feed": item.feed_id,
            "ingested_at": _utc_iso(now),
            "member": member,
            "idx": json.dumps(base),
            "label_idx": "[]",
        }
        if batch is not None:
            fields["batch"] = batch
        pipe.hset(keys.item_key(item.id), mapping=fields)
        pipe.eval(_COMPOSE, 2, keys.item_key(item.id), LISTED, item.id)
        # One command for every index (a text has hundreds of words): packing one ZADD per
        # word cost more client CPU than everything else in storing an item.
        pipe.eval(_ZADD_ALL, len(base), *base, member)
        for alias in aliases:
            pipe.set(alias, item.id)
        if count:
            pipe.hincrby(keys.STATS, "items_ingested", 1)

    def _queue_update(
        self, pipe: Any, item: Item, old_member: str, idx_json: str, story: str | None
    ) -> None:
        key = keys.item_key(item.id)
        member = index_member(item)
        old_idx: list[str] = json.loads(idx_json)
        idx = [k for k in old_idx if not k.startswith(_WORD_PREFIX)]
        pipe.hset(
            key,
            mapping={
                "item": item.model_dump_json(),
                "card": card_json(item),
                "digest": content_digest(item),
                "member": member,
                "idx": json.dumps(idx),
            },
        )
        pipe.eval(_COMPOSE, 2, key, LISTED, item.id)
        # The old text's words go; the new text's come with its classification (set_labels;
        # an update publishes item.updated, which the classifier classifies again).
        for index in old_idx:
            if index.startswith(_WORD_PREFIX):
                pipe.zrem(index, old_member)
        if member != old_member:  # the published time changed: move it in every index
            pipe.eval(_REINDEX, 2, key, INDEX_SCORE, old_member, member)
            if story:
                pipe.zadd(STORIES, {story: _ms(item.published)}, gt=True)
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
                    applied, member, old_idx, digest, indexed, idx, raw = await pipe.hmget(
                        key, "applied", "member", "label_idx", "digest", "words", "idx", "item"
                    )
                    if member is None or applied == event_id:
                        await pipe.unwatch()
                        return False
                    new_idx = label_indexes(labels)
                    # The text's words, once per content (``digest``): not at ingestion, so
                    # polling does not pay for ~300 index entries an item (see module doc).
                    word_idx = (
                        word_indexes(Item.model_validate_json(raw))
                        if indexed != digest and raw is not None
                        else []
                    )
                    pipe.multi()
                    if word_idx:
                        pipe.eval(_ZADD_ALL, len(word_idx), *word_idx, member)
                        pipe.hset(
                            key,
                            mapping={"words": digest, "idx": _add_all_json(idx, word_idx)},
                        )
                    pipe.hset(
                        key,
                        mapping={
                            "labels": labels.model_dump_json(),
                            "brief": brief_json(labels),
                            "classified_at": _utc_iso(now),
                            "applied": event_id,
                            "label_idx": json.dumps(new_idx),
                        },
                    )
                    pipe.eval(_COMPOSE, 2, key, LISTED, item_id)
                    for index in set(json.loads(old_idx or "[]")) - set(new_idx):
                        pipe.zrem(index, member)
                    for index in new_idx:
                        pipe.zadd(index, {member: 0})
                    pipe.zadd(INDEX_SCORE, {member: labels.score})
                    for kind, label in _label_names(labels):
                        pipe.sadd(labels_key(kind), label)
                    story = story_of(labels)
                    if story:
                        pipe.hset(key, "story", story)
                        pipe.zadd(STORIES, {story: int(member[:15])}, gt=True)
                    pipe.hincrby(keys.STATS, "items_classified", 1)
                    if outbox is not None:
                        outbox(pipe)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def applied_event(self, item_id: str) -> str | None:
        """The id of the last classification event applied to the item (None: none yet)."""
        value = await self.redis.hget(keys.item_key(item_id), "applied")
        return str(value) if value is not None else None

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
        _check_cursor(q)
        ids, next_cursor = await self._find(q, q.positive_indexes())
        return Page(items=await self.get_many(ids), next_cursor=next_cursor)

    async def query_cards(
        self, q: ItemQuery, *, guard: Guard | None = None, evidence: bool = False
    ) -> CardPage:
        """``query`` as stored JSON, for the list view: the page's items as ``ItemOut`` JSON
        assembled by Redis (``joined``), or, when one of them cannot be (see _LISTED),
        per item its card (the list-view fields, see ``CARD_FIELDS``), ingested/classified
        time and labels (brief and whole), unparsed. The labels are brief (no evidence, see
        ``brief_json``) unless ``evidence``.

        ``guard`` (the API's key check) is decided before the page is used: its reads ride
        in the page's one command when the page takes one (its check then refuses a page
        already read), else they go first, alone."""
        probes = guard.reads() if guard is not None else []
        try:
            _check_cursor(q)
        except BadCursor:
            if guard is not None:  # a refusal comes before any other answer
                await self._guard_alone(guard, probes)
            raise
        indexes = q.positive_indexes()
        if len(indexes) == 1 and q.relevant is not False and q.min_score is None:
            # One index decides: the guard's reads, _find's result and the page at once.
            bounds = [_upper_bound(q), _lower_bound(q), q.limit + 1]
            probe_args: list[str | int] = [len(probes)]
            for command, _key, *args in probes:
                probe_args += [command, len(args), *args]
            reply = await run_script(
                self._line,
                self._one_index_page,
                [*indexes, LISTED, *(probe[1] for probe in probes)],
                [*bounds, keys.item_key(""), "1" if evidence else "0", *probe_args],
            )
            if guard is not None:
                guard.check(reply[0])
            members: list[str] = reply[1]
            more = len(members) > q.limit
            page = members[: q.limit]
            return _card_page(reply[2:], members[q.limit - 1] if more else None, lambda: _ids(page))
        if guard is not None:
            await self._guard_alone(guard, probes)
        ids, next_cursor = await self._find(q, indexes)
        if not ids:
            return CardPage([], next_cursor, joined="")
        flag = "1" if evidence else "0"
        reply = await self.redis.eval(_CARD_ROWS, 1, LISTED, keys.item_key(""), flag, *ids)
        return _card_page(reply, next_cursor, lambda: ids)

    async def _guard_alone(self, guard: Guard, probes: list[tuple[str, ...]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for probe in probes:
                pipe.execute_command(*probe)
            guard.check(await pipe.execute())

    async def _find(self, q: ItemQuery, indexes: list[str]) -> tuple[list[str], str | None]:
        """The ids of the page ``q`` asks for, in order, and the next page's cursor
        (``indexes``: ``q.positive_indexes()``; the cursor already checked)."""
        if len(indexes) == 1:
            driver = indexes[0]  # nothing to choose: save the round trip
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for index in indexes:
                    pipe.zcard(index)
                sizes: list[int] = await pipe.execute()
            if min(sizes) == 0:
                return [], None
            driver = indexes[sizes.index(min(sizes))]
        others = [index for index in indexes if index != driver]
        hi = _upper_bound(q)
        lo = _lower_bound(q)
        filtered = bool(others) or q.relevant is False or q.min_score is not None
        chunk = max(q.limit * 4, 200) if filtered else q.limit + 1
        found: list[str] = []
        scanned, exhausted, more = 0, False, False
        while len(found) < q.limit:
            members: list[str] = await self.redis.zrevrangebylex(driver, hi, lo, 0, chunk)
            if not members:
                exhausted = True
                break
            kept = await self._filter(members, others, q)
            room = q.limit - len(found)
            found.extend(kept[:room])
            scanned += len(members)
            if len(kept) > room:  # the page is full and more matches follow in this chunk
                more = True
                break
            hi = f"({members[-1]}"
            if len(members) < chunk:
                exhausted = True
                break
            if q.max_scan is not None and scanned >= q.max_scan and len(found) < q.limit:
                # Out of budget: hand back what we have and where we stopped.
                return _ids(found), members[-1]
        if not found or exhausted:
            return _ids(found), None
        more = more or (len(found) == q.limit and await self._has_more(driver, hi, lo))
        return _ids(found), found[-1] if more else None

    async def _filter(self, members: list[str], others: list[str], q: ItemQuery) -> list[str]:
        exclude_relevant = q.relevant is False
        if not others and not exclude_relevant and q.min_score is None:
            return members
        async with self.redis.pipeline(transaction=False) as pipe:
            for index in others:
                pipe.zmscore(index, members)
            if exclude_relevant:
                pipe.zmscore(keys.INDEX_RELEVANT, members)
            if q.min_score is not None:
                pipe.zmscore(INDEX_SCORE, members)
            replies = await pipe.execute()
        positive = replies[: len(others)]
        negative = replies[len(others) : len(others) + int(exclude_relevant)]
        scores = replies[-1] if q.min_score is not None else None
        floor = q.min_score or 0.0
        return [
            m
            for i, m in enumerate(members)
            if all(r[i] is not None for r in positive)
            and all(r[i] is None for r in negative)
            and (scores is None or (scores[i] is not None and float(scores[i]) >= floor))
        ]

    async def _has_more(self, driver: str, hi: str, lo: str) -> bool:
        nxt = await self.redis.zrevrangebylex(driver, hi, lo, 0, 1)
        return bool(nxt)

    # -- stories ------------------------------------------------------------------------
    async def set_story(self, item_id: str, story_id: str) -> bool:
        """Put an item in a story (until the classifier's labels carry ``story_id``).
        False when the item is unknown."""
        key = keys.item_key(item_id)
        member, idx = await self.redis.hmget(key, "member", "idx")
        if member is None:
            return False
        index = keys.index_key("story", story_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"story": story_id, "idx": _add_json(idx, index)})
            pipe.zadd(index, {member: 0})
            pipe.zadd(STORIES, {story_id: int(member[:15])}, gt=True)
            await pipe.execute()
        return True

    async def story_of_item(self, item_id: str) -> str | None:
        story: str | None = await self.redis.hget(keys.item_key(item_id), "story")
        return story

    async def stories(
        self, *, limit: int, before: tuple[int, str] | None = None
    ) -> list[tuple[str, int, int]]:
        """Stories newest first: (id, newest item's published ms, item count). ``before`` is
        the (ms, id) of the last story of the previous page."""
        hi = "+inf" if before is None else str(before[0])
        rows: list[tuple[str, float]] = await self.redis.zrevrangebyscore(
            STORIES, hi, "-inf", start=0, num=limit + 50, withscores=True
        )
        if before is not None:  # same ms: ids ordered descending, keep those after the cursor
            rows = [(s, ms) for s, ms in rows if int(ms) < before[0] or s < before[1]]
        rows = rows[:limit]
        async with self.redis.pipeline(transaction=False) as pipe:
            for story, _ in rows:
                pipe.zcard(keys.index_key("story", story))
            counts = await pipe.execute()
        return [(s, int(ms), int(n)) for (s, ms), n in zip(rows, counts, strict=True)]

    async def story(self, story_id: str, limit: int = 200) -> list[StoredItem]:
        """A story's items, newest first (at most ``limit``)."""
        members: list[str] = await self.redis.zrevrangebylex(
            keys.index_key("story", story_id), "+", "-", 0, limit
        )
        return await self.get_many([m.split(":", 1)[1] for m in members])

    # -- taxonomy -----------------------------------------------------------------------
    async def label_counts(
        self, extra: dict[str, list[str]] | None = None
    ) -> dict[str, dict[str, int]]:
        """Items per label, for every label ever applied plus the ``extra`` ones (a lexicon's):
        ``{kind: {label: count}}``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind in LABEL_KINDS:
                pipe.smembers(labels_key(kind))
            seen = await pipe.execute()
        names: dict[str, list[str]] = {}
        for kind, members in zip(LABEL_KINDS, seen, strict=True):
            names[kind] = sorted(set(members) | set((extra or {}).get(kind, [])))
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind in LABEL_KINDS:
                for label in names[kind]:
                    pipe.zcard(keys.index_key(kind, label))
            counts = iter(await pipe.execute())
        return {kind: {label: int(next(counts)) for label in names[kind]} for kind in LABEL_KINDS}


def _ids(members: list[str]) -> list[str]:
    return [m.split(":", 1)[1] for m in members]


def _check_cursor(q: ItemQuery) -> None:
    if q.cursor is not None and not _MEMBER.match(q.cursor):
        raise BadCursor(f"cursor {q.cursor!r} was not issued by this store")


def _lower_bound(q: ItemQuery) -> str:
    return f"[{max(_ms(q.since), 0):015d}" if q.since else "-"


def _card_page(
    reply: list[str | None], next_cursor: str | None, ids: Callable[[], list[str]]
) -> CardPage:
    """A CardPage from _LISTED's page_json reply for the items ``ids()`` (only needed,
    and so only made, when Redis declined to assemble the page)."""
    if reply[0] is not None:
        return CardPage([], next_cursor, joined=reply[0])
    return CardPage(_cards(ids(), reply[1:]), next_cursor)


def _cards(ids: list[str], flat: list[str | None]) -> list[Card]:
    """Cards from ``_CARD_ROW`` rows flattened in ``ids``' order; an item deleted meanwhile
    (no ``ingested_at``) is left out, as ``get_many`` does."""
    width = len(_CARD_ROW)
    rows = (flat[n * width : (n + 1) * width] for n in range(len(ids)))
    return [Card(i, card, at, classified, brief, labels)
            for i, (card, at, classified, brief, labels) in zip(ids, rows, strict=True)
            if at is not None]  # fmt: skip


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
