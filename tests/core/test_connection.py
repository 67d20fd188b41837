"""The client ``make_client`` builds: hiredis packs its commands exactly as redis-py would;
``run_script``, the lean EVALSHA on a multiplexed connection, gives the script's own
answers, and falls back to the client's call (which loads the script and retries) when the
plain call cannot answer."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import DataError, ResponseError

from core.connection import (
    _Connection,
    _SSLConnection,
    _UnixConnection,
    make_client,
    run_script,
)

_ECHO = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"


async def test_answers_like_the_scripts_own_call(client, line, r):
    script = client.register_script(_ECHO)
    assert await script(keys=["n"], args=["a"]) == ["n", "a", 1]
    assert await run_script(line, script, ["n"], ["b"]) == ["n", "b", 2]


async def test_loads_a_script_redis_does_not_have(client, line, r):
    script = client.register_script(_ECHO)
    await r.script_flush()  # as after a restart: NOSCRIPT, then the client loads it
    assert await run_script(line, script, ["n"], ["a"]) == ["n", "a", 1]
    assert await r.script_exists(script.sha) == [True]


async def test_survives_a_dropped_connection(client, line, r):
    script = client.register_script(_ECHO)
    assert await run_script(line, script, ["n"], ["a"]) == ["n", "a", 1]
    name = "run-script-victim"
    assert await line.execute("CLIENT", "SETNAME", name) == "OK"  # the line's connection
    victims = [c for c in await r.client_list() if c["name"] == name]
    assert len(victims) == 1
    await r.client_kill_filter(_id=victims[0]["id"])
    assert await run_script(line, script, ["n"], ["b"]) == ["n", "b", 2]
    assert await run_script(line, script, ["n"], ["c"]) == ["n", "c", 3]


async def test_a_script_error_is_raised_as_it_is(client, line, r):
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    await r.set("text", "not a number")
    with pytest.raises(ResponseError, match="not an integer"):
        await run_script(line, script, ["text"], [])
    assert await run_script(line, script, ["n"], []) == 1  # the connection still works


_ARG = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(head=st.sampled_from(["SET", "EVALSHA", "CONFIG GET", "hset"]), rest=st.lists(_ARG))
def test_hiredis_packing_is_byte_identical_to_redis_pys(head, rest):
    ours = _Connection()
    theirs = aioredis.Connection()
    assert b"".join(ours.pack_command(head, *rest)) == b"".join(theirs.pack_command(head, *rest))
    commands = [(head, *rest), ("GET", "k")]
    assert b"".join(ours.pack_commands(commands)) == b"".join(theirs.pack_commands(commands))


@pytest.mark.parametrize("bad", [None, True, object()])
def test_what_hiredis_refuses_gets_redis_pys_error(bad):
    with pytest.raises(DataError):
        _Connection().pack_command("SET", "k", bad)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", _Connection),
        ("rediss://example.org:6380/0", _SSLConnection),
        ("unix:///tmp/redis.sock?db=1", _UnixConnection),
    ],
)
def test_every_scheme_gets_the_packing_connection(url, expected):
    client = make_client(url)
    assert client.connection_pool.connection_class is expected


async def test_the_packing_client_round_trips(client, r):
    assert await client.set("k", "é") is True
    async with client.pipeline(transaction=True) as pipe:
        pipe.incrbyfloat("f", 1.5)
        pipe.get("k")
        assert await pipe.execute() == [1.5, "é"]


async def test_writes_large_and_small_commands_and_health_checks(client, r):
    big = "x" * (3 * 1024 * 1024)  # past the write buffer's high-water mark: drains
    assert await client.set("big", big) is True
    assert await client.strlen("big") == len(big)
    conn = await client.connection_pool.get_connection()
    try:
        conn.next_health_check = -1.0  # a health check is due: redis-py's own path
        await conn.send_command("PING")
        assert await conn.read_response() == "PONG"
        assert conn.next_health_check > 0
    finally:
        await client.connection_pool.release(conn)
    results = await asyncio.gather(*(client.incr("n") for _ in range(50)))
    assert sorted(results) == list(range(1, 51))


async def test_the_pool_has_room_for_every_live_stream_beside_the_rest(redis_url, tmp_path):
    from core.connection import POOL_HEADROOM, connect
    from core.settings import Settings

    settings = Settings(redis_url=redis_url, data_dir=tmp_path, api_max_streams=250)
    handle = await connect(settings)
    try:
        assert handle.client.connection_pool.max_connections == 250 + POOL_HEADROOM
    finally:
        await handle.close()
