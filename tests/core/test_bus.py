"""The event bus against a real Redis: delivery, ack, reclaim, dead letters, trimming."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from core import keys
from core.bus import Bus, Consumer, Delivery, dead_letters, ensure_group
from core.events import Event, ItemIngested
from core.models import Item
from tests.conftest import eventually

STREAM = "nm:test:stream"
GROUP = "g"


def _event(n: int) -> ItemIngested:
    item = Item(
        id=f"{n:016x}",
        feed_id="f",
        title=f"title {n}",
        published=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return ItemIngested(item=item)


class Recorder:
    def __init__(self, fail_titles: set[str] | None = None) -> None:
        self.seen: list[tuple[str, int]] = []
        self.fail_titles = fail_titles or set()

    async def __call__(self, event: Event, delivery: Delivery) -> None:
        assert isinstance(event, ItemIngested)
        if event.item.title in self.fail_titles:
            raise ValueError(f"cannot handle {event.item.title}")
        self.seen.append((event.item.title, delivery.deliveries))


def _consumer(r, handler, name="c1", **kw) -> Consumer:
    kw.setdefault("block_ms", 20)
    return Consumer(r, STREAM, GROUP, name, handler, **kw)


async def _pending(r) -> int:
    info = await r.xpending(STREAM, GROUP)
    return int(info["pending"])


async def test_publish_consume_ack_roundtrip(r):
    bus = Bus(r)
    await ensure_group(r, STREAM, GROUP)
    ids = await bus.publish_many(STREAM, [_event(i) for i in range(5)])
    assert len(ids) == 5
    rec = Recorder()
    c = _consumer(r, rec)
    assert await c.step() == 5
    assert [t for t, _ in rec.seen] == [f"title {i}" for i in range(5)]
    assert all(d == 1 for _, d in rec.seen)
    assert await _pending(r) == 0


async def test_group_creation_is_idempotent(r):
    await ensure_group(r, STREAM, GROUP)
    await ensure_group(r, STREAM, GROUP)
    groups = await r.xinfo_groups(STREAM)
    assert [g["name"] for g in groups] == [GROUP]


async def test_publish_trims_approximately(r):
    bus = Bus(r, maxlen=100)
    for chunk in range(10):
        await bus.publish_many(STREAM, [_event(chunk * 100 + i) for i in range(100)])
    length = await r.xlen(STREAM)
    assert 100 <= length < 1000  # approximate MAXLEN: trimmed, whole macro nodes at a time


async def test_poison_entry_is_dead_lettered_after_n_deliveries_and_loop_goes_on(r):
    bus = Bus(r)
    await ensure_group(r, STREAM, GROUP)
    await bus.publish(STREAM, _event(1))
    poison = _event(2)
    await bus.publish(STREAM, poison)
    await bus.publish(STREAM, _event(3))
    rec = Recorder(fail_titles={"title 2"})
    c = _consumer(r, rec, claim_idle_ms=30, max_deliveries=3)

    async def dead() -> bool:
        return await r.xlen(keys.dead_letter(STREAM)) == 1

    deadline = asyncio.get_running_loop().time() + 10
    while not await dead():
        assert asyncio.get_running_loop().time() < deadline, "poison entry never dead-lettered"
        await c.step()
    assert [t for t, _ in rec.seen] == ["title 1", "title 3"]
    [(_, record)] = await dead_letters(r, STREAM)
    assert record["deliveries"] == "3"
    assert "ValueError: cannot handle title 2" in record["error"]
    assert record["orig_id"] == poison.event_id and record["stream"] == STREAM
    assert await _pending(r) == 0
    assert c.stats.dead_lettered == 1


async def test_undecodable_entry_goes_to_dead_letters(r):
    await ensure_group(r, STREAM, GROUP)
    await r.xadd(STREAM, {"type": "item.unknown", "v": "9", "id": "x", "data": "{}"})
    await r.xadd(STREAM, {"garbage": "yes"})
    c = _consumer(r, Recorder(), max_deliveries=1)
    await c.step()
    rows = await dead_letters(r, STREAM)
    errors = sorted(rec["error"] for _, rec in rows)
    assert errors[0].startswith("EventError: entry lacks")
    assert errors[1].startswith("UnknownEvent: unknown event type 'item.unknown' version 9")
    assert await _pending(r) == 0


async def test_restarted_consumer_drains_own_pending_first(r):
    bus = Bus(r)
    await ensure_group(r, STREAM, GROUP)
    await bus.publish_many(STREAM, [_event(i) for i in range(3)])
    # "w1" reads three entries and dies before acking them.
    await r.xreadgroup(GROUP, "w1", {STREAM: ">"}, count=3)
    await bus.publish_many(STREAM, [_event(i) for i in range(3, 5)])
    rec = Recorder()
    c = _consumer(r, rec, name="w1")
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))

    async def all_seen() -> bool:
        return len(rec.seen) == 5

    await eventually(all_seen)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [t for t, _ in rec.seen] == [f"title {i}" for i in range(5)]
    assert [d for _, d in rec.seen] == [2, 2, 2, 1, 1]  # the old ones are redeliveries
    assert await _pending(r) == 0


async def test_entries_of_a_dead_consumer_are_reclaimed(r):
    bus = Bus(r)
    await ensure_group(r, STREAM, GROUP)
    await bus.publish_many(STREAM, [_event(i) for i in range(4)])
    await r.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=4)
    rec = Recorder()
    c = _consumer(r, rec, name="alive", claim_idle_ms=20)

    async def reclaimed() -> bool:
        await c.step()
        return len(rec.seen) == 4

    await eventually(reclaimed)
    assert sorted(t for t, _ in rec.seen) == [f"title {i}" for i in range(4)]
    assert c.stats.reclaimed == 4
    assert await _pending(r) == 0


@pytest.mark.parametrize("path", ["reclaim", "own-pending"])
async def test_trimmed_pending_entries_are_recorded_and_acked(r, path):
    bus = Bus(r)
    await ensure_group(r, STREAM, GROUP)
    await bus.publish_many(STREAM, [_event(i) for i in range(5)])
    owner = "dead" if path == "reclaim" else "me"
    await r.xreadgroup(GROUP, owner, {STREAM: ">"}, count=5)
    await r.xtrim(STREAM, maxlen=2, approximate=False)  # three pending entries are gone
    rec = Recorder()
    c = _consumer(r, rec, name="me", claim_idle_ms=0)
    if path == "reclaim":
        await c.reclaim()
    else:
        await c.drain_own_pending()
    assert sorted(t for t, _ in rec.seen) == ["title 3", "title 4"]
    rows = await dead_letters(r, STREAM)
    assert len(rows) == 3
    assert all(rec_["error"] == "trimmed from the stream before ack" for _, rec_ in rows)
    assert await _pending(r) == 0


async def test_stop_finishes_batch_and_exits(r):
    bus = Bus(r)
    await ensure_group(r, STREAM, GROUP)
    stop = asyncio.Event()
    handled: list[str] = []

    async def slow(event: Event, delivery: Delivery) -> None:
        stop.set()  # the stop arrives while this batch is in flight
        await asyncio.sleep(0)
        handled.append(delivery.msg_id)

    await bus.publish_many(STREAM, [_event(i) for i in range(3)])
    c = _consumer(r, slow)
    await asyncio.wait_for(c.run(stop), 5)
    assert len(handled) == 3  # the whole batch in hand was finished
    assert await _pending(r) == 0  # and acked


async def test_a_slow_batch_keeps_its_entries_from_being_reclaimed(r):
    bus = Bus(r)
    await ensure_group(r, STREAM, GROUP)
    await bus.publish_many(STREAM, [_event(i) for i in range(6)])
    other = _consumer(r, Recorder(), name="other", claim_idle_ms=60)
    stolen: list[int] = []

    async def slow(event: Event, delivery: Delivery) -> None:
        # While this consumer works through its batch, another one tries to reclaim.
        await asyncio.sleep(0.05)  # stands for real work; the test waits for nothing here
        stolen.append(await other.reclaim())

    c = _consumer(r, slow, name="slow", claim_idle_ms=60)
    assert await c.step() == 6
    assert sum(stolen) == 0 and other.stats.reclaimed == 0
    assert await _pending(r) == 0
