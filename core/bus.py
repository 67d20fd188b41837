"""The event bus on Redis Streams: publish events, consume them in consumer groups.

Guarantees (at-least-once, like arq): an entry is acked only after its handler returned,
so a crash between read and ack leads to a redelivery and handlers must be idempotent
(dedupe on ``event.event_id``). Entries idle past ``claim_idle_ms`` in a dead consumer's
pending list are taken over with XAUTOCLAIM. An entry that failed ``max_deliveries`` times
is copied to the dead-letter stream with its error and delivery count, then acked, so one
poison entry never blocks the loop.

Trimmed entries (MAXLEN dropped them while they were still pending) surface differently by
server version: on 7.x XAUTOCLAIM lists their ids apart and drops them from the pending list;
on 6.2 XAUTOCLAIM returns them as nil and moves them to us, and reading our own pending
entries returns them with no fields. Both are recorded in the dead-letter stream as
``trimmed`` and acked: nothing disappears without a trace.

Owns: stream I/O and delivery bookkeeping. Must not: know what any event means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import keys
from core.events import Event, StreamEntry, decode, encode

log = logging.getLogger(__name__)

Entry = tuple[str, dict[str, str]]


@dataclass(frozen=True)
class Delivery:
    """Where an event came from and how many times it has been delivered."""

    stream: str
    msg_id: str
    deliveries: int


Handler = Callable[[Event, Delivery], Awaitable[None]]


class Bus:
    """Publishing side: XADD with approximate MAXLEN trimming."""

    def __init__(self, redis: aioredis.Redis, *, maxlen: int = keys.STREAM_MAXLEN) -> None:
        # redis-py's stubs describe RESP3 reply shapes; we speak RESP2 with decoded strings,
        # so replies are treated as Any at this boundary and shaped right here.
        self.redis: Any = redis
        self.maxlen = maxlen

    async def publish(self, stream: str, event: Event) -> str:
        msg_id: str = await self.redis.xadd(
            stream, encode(event), maxlen=self.maxlen, approximate=True
        )
        return msg_id

    def entry(
        self, stream: str, fields: dict[str, str], carries: tuple[str, str, str] | None = None
    ) -> StreamEntry:
        """An entry for ``stream`` with this bus's trimming, for a writer that appends it in
        its own atomic write (``ItemStore.upsert_many``)."""
        return StreamEntry(stream, fields, self.maxlen, carries)

    def queue(self, pipe: Any, stream: str, event: Event) -> None:
        """Queue a publish on a caller's MULTI pipeline (transactional outbox: the event is
        published if and only if the caller's write commits)."""
        pipe.xadd(stream, encode(event), maxlen=self.maxlen, approximate=True)

    async def publish_many(self, stream: str, events: Iterable[Event]) -> list[str]:
        """Publish in one round trip (a non-transactional pipeline)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(stream, encode(event), maxlen=self.maxlen, approximate=True)
            ids: list[str] = await pipe.execute()
        return ids


async def ensure_group(redis: Any, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) unless it exists; safe to call often."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    errors: list[str] = field(default_factory=list)


class Consumer:
    """One consumer in a group: drains its own pending entries, then reads new ones."""

    def __init__(
        self,
        redis: aioredis.Redis,
        stream: str,
        group: str,
        name: str,
        handler: Handler,
        *,
        batch: int = 100,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        max_deliveries: int = 5,
    ) -> None:
        self.redis: Any = redis  # see Bus.__init__
        self.stream = stream
        self.group = group
        self.name = name
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.dead_stream = keys.dead_letter(stream)
        self.stats = ConsumerStats()
        self._last_claim = 0.0

    # -- the loop -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished and acked first.

        A lost connection is retried with backoff; after each (re)connection the group is
        ensured and this consumer's own pending entries are handled first, so a batch in hand
        when Redis went away is not left waiting for ``claim_idle_ms``.
        """
        backoff, fresh = 0.1, True
        while not stop.is_set():
            try:
                if fresh:
                    await ensure_group(self.redis, self.stream, self.group)
                    await self.drain_own_pending()
                    fresh = False
                await self.step()
                backoff = 0.1
            except (RedisConnectionError, RedisTimeoutError, OSError) as e:
                log.warning(
                    "redis unreachable; retrying",
                    extra={"stream": self.stream, "error": str(e), "retry_in": backoff},
                )
                await _sleep_or_stop(stop, backoff)
                backoff, fresh = min(backoff * 2, 5.0), True
            except ResponseError as e:
                if "NOGROUP" in str(e):  # stream deleted under us (FLUSHALL, a restore)
                    fresh = True
                    continue
                raise
        log.info("consumer stopped", extra={"stream": self.stream, "consumer": self.name})

    async def step(self) -> int:
        """One turn: reclaim idle entries when due, then read and handle a batch of new ones."""
        handled = 0
        if time.monotonic() - self._last_claim >= self.claim_idle_ms / 2000:
            handled += await self.reclaim()
        reply = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=self.batch, block=self.block_ms
        )
        for _stream, entries in reply or []:
            handled += await self._process(entries, counts=None)
        return handled

    async def drain_own_pending(self) -> int:
        """Handle the entries this consumer name read before a restart but never acked."""
        total, start = 0, "0-0"
        while True:
            reply = await self.redis.xreadgroup(
                self.group, self.name, {self.stream: start}, count=self.batch
            )
            entries: list[Entry] = reply[0][1] if reply else []
            if not entries:
                return total
            counts = await self._delivery_counts([msg_id for msg_id, _ in entries])
            total += await self._process(entries, counts=counts)
            start = entries[-1][0]

    async def reclaim(self) -> int:
        """XAUTOCLAIM entries idle past ``claim_idle_ms`` (dead consumers', or our failures)."""
        self._last_claim = time.monotonic()
        total, start, saw_nil = 0, "0-0", False
        while True:
            reply = await self.redis.xautoclaim(
                self.stream, self.group, self.name, self.claim_idle_ms, start, count=self.batch
            )
            start, claimed = reply[0], reply[1]
            for msg_id in reply[2] if len(reply) > 2 else []:  # 7.x: trimmed, already unlisted
                await self._dead_letter(msg_id, {}, "trimmed from the stream before ack", 0)
            entries: list[Entry] = [(i, f) for i, f in claimed if i is not None]
            saw_nil = saw_nil or len(entries) < len(claimed)
            if entries:
                self.stats.reclaimed += len(entries)
                counts = await self._delivery_counts([msg_id for msg_id, _ in entries])
                total += await self._process(entries, counts=counts)
            if start in ("0-0", "0"):
                break
        if saw_nil:  # 6.2: trimmed entries were claimed to us as nil; their ids show up here
            total += await self.drain_own_pending()
        return total

    # -- handling -----------------------------------------------------------------------
    async def _process(self, entries: Sequence[Entry], counts: dict[str, int] | None) -> int:
        done: list[str] = []
        acked = 0
        refreshed = time.monotonic()
        for index, (msg_id, fields) in enumerate(entries):
            if time.monotonic() - refreshed >= self.claim_idle_ms / 3000:
                # A slow batch: ack what is done and reset the idle time of what is still in
                # hand (XCLAIM JUSTID, min-idle 0), so other consumers' XAUTOCLAIM does not
                # take entries this consumer is about to handle.
                acked += await self._ack(done)
                done = []
                rest = [m for m, _ in entries[index:]]
                await self.redis.xclaim(self.stream, self.group, self.name, 0, rest, justid=True)
                refreshed = time.monotonic()
            deliveries = counts.get(msg_id, 1) if counts is not None else 1
            if not fields:
                await self._dead_letter(msg_id, {}, "trimmed from the stream before ack", 0)
                continue
            error = await self._handle_one(msg_id, fields, deliveries)
            if error is None:
                done.append(msg_id)
            elif deliveries >= self.max_deliveries:
                await self._dead_letter(msg_id, fields, error, deliveries)
        return acked + await self._ack(done)

    async def _ack(self, msg_ids: list[str]) -> int:
        if msg_ids:
            await self.redis.xack(self.stream, self.group, *msg_ids)
        return len(msg_ids)

    async def _handle_one(self, msg_id: str, fields: dict[str, str], deliveries: int) -> str | None:
        """Run the handler; return None on success, else the error text."""
        try:
            event = decode(fields)
            await self.handler(event, Delivery(self.stream, msg_id, deliveries))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.stats.failed += 1
            error = f"{type(e).__name__}: {e}"
            log.warning(
                "handler failed",
                exc_info=not isinstance(e, RedisError),
                extra={
                    "stream": self.stream,
                    "msg_id": msg_id,
                    "deliveries": deliveries,
                    "error": error,
                },
            )
            return error
        self.stats.handled += 1
        return None

    async def _dead_letter(
        self, msg_id: str, fields: dict[str, str], error: str, deliveries: int
    ) -> None:
        """Copy the entry to the dead-letter stream and ack it, atomically."""
        record = {
            **{f"orig_{k}": v for k, v in fields.items()},
            "stream": self.stream,
            "msg_id": msg_id,
            "group": self.group,
            "consumer": self.name,
            "deliveries": str(deliveries),
            "error": error[:2000],
            "dead_at": str(int(time.time() * 1000)),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_stream, record, maxlen=keys.STREAM_MAXLEN, approximate=True)
            pipe.xack(self.stream, self.group, msg_id)
            await pipe.execute()
        self.stats.dead_lettered += 1
        log.error(
            "entry dead-lettered",
            extra={
                "stream": self.stream,
                "msg_id": msg_id,
                "deliveries": deliveries,
                "error": error,
            },
        )

    async def _delivery_counts(self, msg_ids: list[str]) -> dict[str, int]:
        if not msg_ids:
            return {}
        rows = await self.redis.xpending_range(
            self.stream, self.group, min=msg_ids[0], max=msg_ids[-1], count=len(msg_ids) + 100
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def dead_letters(redis: Any, stream: str, count: int = 100) -> list[Entry]:
    """The newest dead-lettered entries of ``stream`` (for the API, tests and operators)."""
    rows: list[Entry] = await redis.xrevrange(keys.dead_letter(stream), count=count)
    return rows
