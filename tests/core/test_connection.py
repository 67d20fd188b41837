"""``run_script``: the lean EVALSHA gives the script's own answers, and falls back to the
client's call (which loads the script and retries) when the plain call cannot answer."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from core.connection import make_client, run_script

_ECHO = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"


async def test_answers_like_the_scripts_own_call(redis_url, r):
    client = make_client(redis_url)
    try:
        script = client.register_script(_ECHO)
        assert await script(keys=["n"], args=["a"]) == ["n", "a", 1]
        assert await run_script(client, script, ["n"], ["b"]) == ["n", "b", 2]
    finally:
        await client.aclose()


async def test_loads_a_script_redis_does_not_have(redis_url, r):
    client = make_client(redis_url)
    try:
        script = client.register_script(_ECHO)
        await r.script_flush()  # as after a restart: NOSCRIPT, then the client loads it
        assert await run_script(client, script, ["n"], ["a"]) == ["n", "a", 1]
        assert await r.script_exists(script.sha) == [True]
    finally:
        await client.aclose()


async def test_survives_a_dropped_connection(redis_url, r):
    client = make_client(redis_url)
    try:
        script = client.register_script(_ECHO)
        assert await run_script(client, script, ["n"], ["a"]) == ["n", "a", 1]
        name = "run-script-victim"
        await client.client_setname(name)  # the pool's one idle connection
        victims = [c for c in await r.client_list() if c["name"] == name]
        assert len(victims) == 1
        await r.client_kill_filter(_id=victims[0]["id"])
        assert await run_script(client, script, ["n"], ["b"]) == ["n", "b", 2]
    finally:
        await client.aclose()


async def test_a_script_error_is_raised_as_it_is(redis_url, r):
    client = make_client(redis_url)
    try:
        script = client.register_script("return redis.call('INCR', KEYS[1])")
        await r.set("text", "not a number")
        with pytest.raises(ResponseError, match="not an integer"):
            await run_script(client, script, ["text"], [])
        assert await run_script(client, script, ["n"], []) == 1  # the connection still works
    finally:
        await client.aclose()
