"""``Multiplexed``: calls from many tasks share one connection and each gets its own reply,
whatever happens to the others (an error reply, a cancelled caller, a dropped connection)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from core.multiplex import Multiplexed


async def _connections_received(r) -> int:
    return int((await r.info("stats"))["total_connections_received"])


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies(line, r):
    await r.set("text", "not a number")
    before = await _connections_received(r)
    calls = [line.execute("ECHO", f"call {n}") for n in range(300)]
    calls += [line.execute("INCR", "counter") for _ in range(100)]
    replies = await asyncio.gather(*calls)
    assert replies[:300] == [f"call {n}" for n in range(300)]
    assert sorted(replies[300:]) == list(range(1, 101))
    assert await _connections_received(r) - before == 1


async def test_an_error_reply_goes_to_its_caller_only(line, r):
    await r.set("text", "not a number")
    replies = await asyncio.gather(
        line.execute("ECHO", "before"),
        line.execute("INCR", "text"),
        line.execute("ECHO", "after"),
        return_exceptions=True,
    )
    assert replies[0] == "before" and replies[2] == "after"
    assert isinstance(replies[1], ResponseError) and "not an integer" in str(replies[1])


async def test_a_cancelled_callers_reply_is_dropped_not_given_to_the_next(line, r):
    blocked = asyncio.create_task(line.execute("BLPOP", "empty-list", "0.3"))
    await _until(lambda: blocked_clients(r), 1)
    blocked.cancel()
    # Pipelined behind the BLPOP: its nil reply comes first and must be dropped.
    assert await line.execute("ECHO", "mine") == "mine"
    assert blocked.cancelled()


async def test_a_dropped_connection_fails_the_calls_waiting_then_reconnects(line, r):
    assert await line.execute("CLIENT", "SETNAME", "mux-victim") == "OK"
    waiting = asyncio.create_task(line.execute("BLPOP", "empty-list", "30"))
    await _until(lambda: blocked_clients(r), 1)
    victim = [c for c in await r.client_list() if c["name"] == "mux-victim"]
    await r.client_kill_filter(_id=victim[0]["id"])
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(waiting, 10)
    assert await line.execute("ECHO", "again") == "again"  # a fresh connection


async def test_closing_fails_the_calls_waiting_and_gives_the_connection_back(client, r):
    line = Multiplexed(client)
    waiting = asyncio.create_task(line.execute("BLPOP", "empty-list", "30"))
    await _until(lambda: blocked_clients(r), 1)
    await line.aclose()
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(waiting, 10)
    await _until(lambda: blocked_clients(r), 0)


async def test_replies_are_bytes_for_a_client_that_does_not_decode(redis_url, r):
    raw = Redis.from_url(redis_url)
    line = Multiplexed(raw)
    try:
        assert await line.execute("ECHO", "é") == "é".encode()
    finally:
        await line.aclose()
        await raw.aclose()


async def blocked_clients(r) -> int:
    return int((await r.info("clients"))["blocked_clients"])


async def _until(probe, want: int, within_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while (got := await probe()) != want:
        assert asyncio.get_running_loop().time() < deadline, f"{got} != {want}"
        await asyncio.sleep(0.01)


async def test_a_connection_idle_too_long_is_replaced_before_the_next_call(client, line, r):
    assert line.idle_s == 30  # the client's health_check_interval, as make_client sets it
    line.idle_s = 0.0  # every gap between calls is "too long"
    before = await _connections_received(r)
    for n in range(3):
        assert await line.execute("ECHO", f"call {n}") == f"call {n}"
    assert await _connections_received(r) - before == 3
    assert len(client.connection_pool._in_use_connections) == 1  # the others given back
    together = await asyncio.gather(*(line.execute("ECHO", str(n)) for n in range(20)))
    assert together == [str(n) for n in range(20)]
    assert await _connections_received(r) - before == 4  # one call turn, one connection
