"""Commands from many tasks pipelined on one connection: ``Multiplexed(client).execute(…)``.

A list page is one EVALSHA, and the API serves 50 of them at once. Through redis-py each
takes a connection from the pool, writes, waits, reads and gives the connection back: per
request that is ~100 µs of client CPU, and one read and one write system call on each side.
Here the concurrent calls share one connection of the client's pool (taken once, connected
and authenticated as the pool makes them): the commands of one event-loop turn go out in
one write, Redis answers them in order, and one reader task hands each reply to its caller
(a reply read is matched to the oldest call waiting: Redis answers in order).

A connection left idle longer than the client's ``health_check_interval`` (30 s as
``make_client`` builds it) is given back before the next call, which takes one from the
pool (checked by it as usual): a connection a firewall dropped while idle is never written
to blindly. On a connection error every call waiting fails with redis-py's
``ConnectionError`` (callers fall back to redis-py, which retries as the client is
configured to), the connection is dropped, and the next call takes a fresh one. A caller
cancelled while it waits leaves its reply to be read and dropped, so the others stay
matched.

Owns: that connection and the matching of replies. Must not: know which commands it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

_READ_SIZE = 1 << 16


class Multiplexed:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        kwargs = client.connection_pool.connection_kwargs
        self.idle_s = float(kwargs.get("health_check_interval") or 30)
        self._line: _Line | None = None  # the connection in use, while it works
        self._connecting: asyncio.Lock | None = None

    async def execute(self, *args: Any) -> Any:
        """One command's reply (an error reply is raised as ``ResponseError``)."""
        line = self._line
        if line is None or not line.ok or line.idle_for() > self.idle_s:
            line = await self._connect()
        return await line.execute(hiredis.pack_command(args))

    async def _connect(self) -> _Line:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            old = self._line
            if old is not None and old.ok and old.idle_for() > self.idle_s:
                await old.aclose()
            if self._line is None or not self._line.ok:
                pool = self.client.connection_pool
                conn = await pool.get_connection()  # type: ignore[no-untyped-call]
                self._line = _Line(pool, conn)
            return self._line

    async def aclose(self) -> None:
        """Stop reading and give the connection back (calls still waiting fail)."""
        if self._line is not None:
            await self._line.aclose()
            self._line = None


class _Line:
    """One connection: its calls waiting for replies, oldest first, and its reader."""

    def __init__(self, pool: Any, conn: Any) -> None:
        self.pool = pool
        self.conn = conn
        self.ok = True
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.out: list[bytes] = []
        self.loop = asyncio.get_running_loop()
        self.used = self.loop.time()  # the last call or reply
        kwargs = pool.connection_kwargs
        decode = kwargs.get("decode_responses", False)
        self.parser = hiredis.Reader(
            replyError=ResponseError,
            encoding=kwargs.get("encoding", "utf-8") if decode else None,
            errors=kwargs.get("encoding_errors", "strict"),
        )
        self.reader = self.loop.create_task(self._read())

    def idle_for(self) -> float:
        """Seconds since the last call or reply (0 while a call is waiting)."""
        return 0.0 if self.waiting else self.loop.time() - self.used

    async def execute(self, packed: bytes) -> Any:
        reply: asyncio.Future[Any] = self.loop.create_future()
        self.waiting.append(reply)
        self.used = self.loop.time()
        if not self.out:  # the first command of this turn: written at the turn's end
            self.loop.call_soon(self._flush)
        self.out.append(packed)
        return await reply

    def _flush(self) -> None:
        out, self.out = self.out, []
        if not self.ok:  # failed meanwhile: its callers have been told
            return
        try:
            self.conn._writer.write(b"".join(out))
        except Exception as e:  # closed under us: this connection is done
            self._fail(e)
            self.reader.cancel()

    async def _read(self) -> None:
        try:
            while True:
                data = await self.conn._reader.read(_READ_SIZE)
                if not data:
                    raise RedisConnectionError("Redis closed the connection")
                self.parser.feed(data)
                self.used = self.loop.time()
                while (reply := self.parser.gets()) is not False:
                    if not self.waiting:
                        raise RedisConnectionError("a reply no call was waiting for")
                    waiter = self.waiting.popleft()
                    if waiter.done():  # its caller was cancelled: the reply is dropped
                        continue
                    if isinstance(reply, ResponseError):
                        waiter.set_exception(reply)
                    else:
                        waiter.set_result(reply)
        except asyncio.CancelledError:
            self._fail(RedisConnectionError("the connection was closed"))
            raise
        except Exception as e:  # any failure (EOF, reset, a protocol error) ends it
            self._fail(e)
        finally:
            await self._release()

    def _fail(self, error: BaseException) -> None:
        """Fail every call waiting: this connection is not used again."""
        self.ok = False
        failure = error if isinstance(error, RedisConnectionError) else None
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(failure or RedisConnectionError(f"{error!r}"))

    async def _release(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.disconnect()
        with contextlib.suppress(Exception):
            await self.pool.release(self.conn)

    async def aclose(self) -> None:
        self.ok = False
        self.reader.cancel()  # it fails the calls waiting and releases the connection
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
