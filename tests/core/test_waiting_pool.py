"""``WaitingPool``: with every connection in use, a call waits for one to be released
(first come, first served) instead of failing at once, and fails with a clear error only
when none is released within ``wait_s``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import MaxConnectionsError

from core.connection import WaitingPool, make_client


@pytest.fixture
async def small(redis_url, r) -> AsyncIterator[aioredis.Redis]:
    """A client whose pool holds two connections and waits up to 2 s for one."""
    made = make_client(redis_url, max_connections=2)
    assert isinstance(made.connection_pool, WaitingPool)
    made.connection_pool.wait_s = 2.0
    yield made
    await made.aclose()


async def _held(client: aioredis.Redis, n: int) -> list[object]:
    pool: Any = client.connection_pool
    return [await pool.get_connection() for _ in range(n)]


async def _still_waiting(*tasks: asyncio.Task[object]) -> bool:
    done, _ = await asyncio.wait(tasks, timeout=0.05)
    return not done


async def test_a_call_waits_for_a_released_connection_instead_of_failing(small):
    await small.set("k", "v")
    held = await _held(small, 2)
    get = asyncio.create_task(small.get("k"))
    assert await _still_waiting(get)
    await small.connection_pool.release(held.pop())
    assert await asyncio.wait_for(get, 5) == "v"
    await small.connection_pool.release(held.pop())


async def test_waiting_calls_are_served_in_arrival_order(small):
    held = await _held(small, 2)
    order: list[int] = []

    async def call(n: int) -> None:
        await small.rpush("order", n)
        order.append(n)

    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(call(n)))
        await asyncio.sleep(0)  # each reaches the queue before the next starts
    assert await _still_waiting(*tasks)
    await small.connection_pool.release(held.pop())  # one connection serves them in turn
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert await small.lrange("order", 0, -1) == ["0", "1", "2", "3", "4"]
    assert order == [0, 1, 2, 3, 4]
    await small.connection_pool.release(held.pop())


async def test_fails_with_a_clear_error_when_none_is_released_in_time(small):
    small.connection_pool.wait_s = 0.1
    held = await _held(small, 2)
    with pytest.raises(MaxConnectionsError, match="all 2 Redis connections stayed in use"):
        await small.get("k")
    for conn in held:
        await small.connection_pool.release(conn)
    assert await small.get("k") is None  # the pool serves again


async def test_a_cancelled_waiter_passes_its_wake_up_on(small):
    await small.set("k", "v")
    held = await _held(small, 2)
    first = asyncio.create_task(small.get("k"))
    await asyncio.sleep(0)
    second = asyncio.create_task(small.get("k"))
    assert await _still_waiting(first, second)
    await small.connection_pool.release(held.pop())  # wakes the first...
    first.cancel()  # ...which is cancelled before it runs: the second must get the turn
    assert await asyncio.wait_for(second, 5) == "v"
    assert first.cancelled()
    await small.connection_pool.release(held.pop())


async def test_a_timed_out_waiter_is_skipped_by_release(small):
    await small.set("k", "v")
    small.connection_pool.wait_s = 0.1
    held = await _held(small, 2)
    with pytest.raises(MaxConnectionsError):
        await small.get("k")  # leaves a dead waiter in the queue
    small.connection_pool.wait_s = 2.0
    waiting = asyncio.create_task(small.get("k"))
    assert await _still_waiting(waiting)
    await small.connection_pool.release(held.pop())
    assert await asyncio.wait_for(waiting, 5) == "v"
    await small.connection_pool.release(held.pop())
