"""Connecting to Redis: the external server named by the settings, or the embedded one.

Owns: turning settings into a live ``redis.asyncio.Redis`` client and reporting which server
it is, and ``run_script``, a lean call for the hottest script. Must not: know about streams
or items.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError, ResponseError

from core.embedded import EmbeddedRedis
from core.errors import RedisUnavailable
from core.multiplex import Multiplexed
from core.settings import Settings, mask_url

log = logging.getLogger(__name__)

# Pooled connections beyond the API's live streams (each holds one in XREAD BLOCK).
POOL_HEADROOM = 100
# How long a call waits for a pooled connection when all are in use, before it fails.
POOL_WAIT_S = 5.0


@dataclass
class RedisHandle:
    """A client plus, for the embedded server, the process that serves it."""

    client: aioredis.Redis
    url: str
    embedded: EmbeddedRedis | None
    version: str

    async def close(self) -> None:
        await self.client.aclose()
        if self.embedded is not None:
            self.embedded.stop()


def _hiredis_pack(self: Any, *args: Any) -> list[bytes]:
    """One command in the Redis protocol, packed by hiredis's C packer: redis-py's asyncio
    connections pack in Python, at 3-4x the cost (a tenth of storing an item, a sixth of a
    list page's Redis call). The output is byte-identical (tests/core/test_connection.py);
    anything hiredis refuses (None, bool, memoryview…) goes to redis-py's packer, which
    packs it or raises its own error."""
    head = args[0]
    if isinstance(head, str) and " " in head:  # "CONFIG GET": separate words, as redis-py
        args = (*head.split(), *args[1:])
    try:
        return [hiredis.pack_command(args)]
    except Exception:  # redis-py decides: pack it or raise its DataError
        return list(aioredis.Connection.pack_command(self, *args))


class _Connection(aioredis.Connection):
    pack_command = _hiredis_pack


class _UnixConnection(aioredis.UnixDomainSocketConnection):
    pack_command = _hiredis_pack


class _SSLConnection(aioredis.SSLConnection):
    pack_command = _hiredis_pack


# redis-py's connection classes → the same with hiredis packing.
_PACKING: dict[type, type] = {
    aioredis.Connection: _Connection,
    aioredis.UnixDomainSocketConnection: _UnixConnection,
    aioredis.SSLConnection: _SSLConnection,
}


class WaitingPool(aioredis.ConnectionPool):
    """redis-py's pool, except that a call finding all ``max_connections`` in use waits up
    to ``wait_s`` for one to be released (first come, first served) instead of failing at
    once with ``MaxConnectionsError``: a burst of requests queues rather than erroring.

    redis-py's own ``BlockingConnectionPool`` takes a lock and a timeout scope on every
    call, ~20 % of a simple command's client CPU; this one costs nothing until the pool is
    exhausted."""

    def __init__(self, *args: Any, wait_s: float = POOL_WAIT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wait_s = wait_s
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while True:
            try:
                return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
            except MaxConnectionsError:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise MaxConnectionsError(
                        f"all {self.max_connections} Redis connections stayed in use for "
                        f"{self.wait_s:g} s"
                    ) from None
                waiter = loop.create_future()
                self._waiters.append(waiter)
                try:
                    async with asyncio.timeout(remaining):
                        await waiter
                except TimeoutError:
                    pass  # try once more; past the deadline, the next failure raises
                except BaseException:  # cancelled: a wake-up meant for us goes on
                    if waiter.done() and not waiter.cancelled():
                        self._wake_next()
                    raise
                finally:
                    waiter.cancel()  # a no-op when woken; else release skips it

    async def release(self, connection: Any) -> None:
        await super().release(connection)
        if self._waiters:
            self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:  # the first caller still waiting
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def make_client(url: str, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client that decodes replies to str, retries a dropped connection, packs
    commands with hiredis and, with every pooled connection in use, waits for one
    (``WaitingPool``; ``max_connections`` defaults to 100 as redis-py's)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    # As ``Redis.from_url``, with our pool class: the URL's scheme picks the connection
    # class, which the pool makes lazily, so swapping it here is enough.
    pool = WaitingPool.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=5),
        **kwargs,
    )
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    client = aioredis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


async def connect(settings: Settings, *, start_embedded: bool = True) -> RedisHandle:
    """Connect to the configured Redis (starting the embedded one if needed) and log it."""
    embedded: EmbeddedRedis | None = None
    if settings.redis_url:
        url = settings.redis_url
    else:
        embedded = EmbeddedRedis(settings.data_dir)
        if start_embedded:
            embedded.start()
        url = embedded.url
    # Room for every live stream (each blocks a connection in XREAD) beside the rest.
    client = make_client(url, max_connections=settings.api_max_streams + POOL_HEADROOM)
    try:
        info = await client.info("server")
    except (RedisError, OSError) as e:
        await client.aclose()
        if embedded is not None:
            embedded.stop()
        raise RedisUnavailable(f"cannot reach redis at {mask_url(url)}: {e}") from e
    version = str(info.get("redis_version", "?"))
    log.info(
        "connected to redis",
        extra={
            "redis": "embedded" if embedded else "external",
            "url": mask_url(url),
            "redis_version": version,
        },
    )
    return RedisHandle(client=client, url=url, embedded=embedded, version=version)


async def run_script(line: Multiplexed, script: AsyncScript, keys: list[Any],
                     args: list[Any]) -> Any:  # fmt: skip
    """``await script(keys=keys, args=args)`` as one EVALSHA pipelined with the other calls
    on ``line`` (core/multiplex.py), without redis-py's per-command wrapping (retry closure,
    metrics hooks, response callbacks) or a pool connection per call.

    NOSCRIPT (after a restart or SCRIPT FLUSH) and a failed connection fall back to the
    script's own call, which loads the script and retries as the client is configured to.
    Any other error reply is raised as it is.
    """
    try:
        return await line.execute("EVALSHA", script.sha, len(keys), *keys, *args)
    except ResponseError as e:
        if not str(e).startswith("NOSCRIPT"):
            raise
    except RedisConnectionError:
        pass
    return await script(keys=keys, args=args)
