"""``FeedRegistry`` on a real Redis: the lease taken with the feed's definition and state in
one call, saving (reschedule, gone, lease release by its holder only), the host slot, and
a lease's expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core import keys
from core.connection import make_client
from ingestor.feeds import FeedDef
from ingestor.state import FeedRegistry
from tests.conftest import eventually

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
FEED = FeedDef(id="f1", url="https://example.org/feed.xml", name="Example")


@pytest.fixture
async def registry(r):
    reg = FeedRegistry(r)
    assert await reg.add(FEED, now=NOW)
    return reg


async def test_the_lease_comes_with_the_feed_and_its_state(registry):
    token, feed, state = await registry.lease_and_read("f1", 60)
    assert token and feed == FEED
    assert state is not None and state.url == FEED.url and state.next_check_reason == "new feed"


async def test_a_held_lease_is_refused_and_reads_nothing(registry, redis_url):
    other = FeedRegistry(make_client(redis_url))  # as a second ingestor process
    try:
        token, _, _ = await registry.lease_and_read("f1", 60)
        assert token is not None
        assert await other.lease_and_read("f1", 60) == (None, None, None)
        await registry.release_lease("f1", token)
        taken, feed, _ = await other.lease_and_read("f1", 60)
        assert taken is not None and feed == FEED
    finally:
        await other.redis.aclose()


async def test_saving_reschedules_and_releases_only_the_holders_lease(registry, r):
    token, _, state = await registry.lease_and_read("f1", 60)
    assert token is not None and state is not None
    later = state.model_copy(update={"next_check_at": NOW + timedelta(minutes=15)})
    await registry.save_state("f1", later, release_token="not-the-token")
    assert await r.get(keys.feed_lease_key("f1")) == token  # a stranger's token: kept
    assert await registry.state("f1") == later
    assert await r.zscore(keys.FEEDS_DUE, "f1") == later.next_check_at.timestamp()
    assert await registry.due(NOW) == []
    assert await registry.due(NOW + timedelta(minutes=15)) == ["f1"]
    await registry.save_state("f1", later, release_token=token)
    assert await r.get(keys.feed_lease_key("f1")) is None


async def test_a_gone_feed_leaves_the_schedule(registry, r):
    token, _, state = await registry.lease_and_read("f1", 60)
    assert state is not None
    await registry.save_state("f1", state.model_copy(update={"gone": True}), release_token=token)
    assert await r.zscore(keys.FEEDS_DUE, "f1") is None
    assert (await registry.state("f1")).gone


async def test_an_unknown_feed_is_leased_with_nothing_to_read(registry):
    token, feed, state = await registry.lease_and_read("nope", 60)
    assert token is not None and feed is None and state is None
    await registry.release_lease("nope", token)


async def test_a_lease_expires_on_its_own(registry, r):
    token, _, _ = await registry.lease_and_read("f1", 0.05)  # its holder "died"
    assert token is not None

    async def free() -> bool:
        return await r.get(keys.feed_lease_key("f1")) is None

    await eventually(free, timeout=5)
    assert (await registry.lease_and_read("f1", 60))[0] is not None


async def test_the_host_slot_is_taken_once_per_spacing(registry):
    assert await registry.host_slot("example.org", 10.0) == 0.0
    wait = await registry.host_slot("example.org", 10.0)
    assert 9.0 < wait <= 10.0
    assert await registry.host_slot("other.example", 10.0) == 0.0


async def test_concurrent_leases_on_one_feed_go_to_exactly_one_caller(registry, redis_url):
    others = [FeedRegistry(make_client(redis_url)) for _ in range(4)]
    try:
        got = await asyncio.gather(
            *(reg.lease_and_read("f1", 60) for reg in [registry, *others] for _ in range(5))
        )
        assert sum(1 for token, _, _ in got if token is not None) == 1
    finally:
        for reg in others:
            await reg.redis.aclose()


async def test_a_lease_for_a_tick_is_refused_once_the_feed_is_no_longer_due(registry, r):
    # A tick read the due list at NOW; since then another process polled the feed and
    # rescheduled it. The tick's lease (due_by=NOW) must not poll it a second time.
    token, _, state = await registry.lease_and_read("f1", 60, due_by=NOW)
    assert token is not None and state is not None
    later = state.model_copy(update={"next_check_at": NOW + timedelta(minutes=15)})
    await registry.save_state("f1", later, release_token=token)
    assert await registry.lease_and_read("f1", 60, due_by=NOW) == (None, None, None)
    assert await r.get(keys.feed_lease_key("f1")) is None  # nothing was taken
    due_later, _, _ = await registry.lease_and_read("f1", 60, due_by=later.next_check_at)
    assert due_later is not None
    await registry.release_lease("f1", due_later)
    anyway, _, _ = await registry.lease_and_read("f1", 60)  # polling now ignores the schedule
    assert anyway is not None


async def test_a_removed_feed_is_not_leased_for_a_tick(registry):
    assert await registry.remove("f1")
    assert await registry.lease_and_read("f1", 60, due_by=NOW) == (None, None, None)
