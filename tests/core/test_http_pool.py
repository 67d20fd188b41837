"""The guarded transport's pool (``core.http._LinearPool``) and streams (``_ReadableCheck``):
the same connection handling as httpcore's own, at linear cost."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpcore
import httpx
import pytest

from core.http import GuardedBackend, GuardedTransport, _LinearPool, _ReadableCheck
from tests.ingestor.httpserver import TestServer


@pytest.fixture
def srv():
    with TestServer() as server:
        server.route("/feed", body=b"<rss/>", headers={"ETag": '"1"'})
        yield server


def _client(max_connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=None)
    transport = GuardedTransport(GuardedBackend(allow_private=True), limits=limits)
    return httpx.AsyncClient(transport=transport)


async def test_requests_beyond_the_pool_wait_and_reuse_its_connections(srv):
    async with _client(max_connections=4) as client:
        assert isinstance(client._transport._pool, _LinearPool)  # type: ignore[attr-defined]
        replies = await asyncio.gather(*(client.get(srv.url("/feed")) for _ in range(60)))
        assert [r.status_code for r in replies] == [200] * 60
        assert srv.connections <= 4  # queued requests waited for a pooled connection
        again = await asyncio.gather(*(client.get(srv.url("/feed")) for _ in range(8)))
        assert all(r.content == b"<rss/>" for r in again)
        assert srv.connections <= 4  # and the next round reused them


async def test_surplus_idle_connections_are_closed_down_to_the_keepalive_limit(srv):
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=2)
    transport = GuardedTransport(GuardedBackend(allow_private=True), limits=limits)
    async with httpx.AsyncClient(transport=transport) as client:
        await asyncio.gather(*(client.get(srv.url("/feed")) for _ in range(10)))
        await client.get(srv.url("/feed"))  # its bookkeeping closes the surplus
        pool: Any = transport._pool
        assert len(pool.connections) <= 2


class _Inner(httpcore.AsyncNetworkStream):
    """A stream over a real socket, as the inner backend gives (only what the check uses)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, info: str) -> Any:
        return self.sock if info == "socket" else None


def test_an_idle_stream_reads_readable_once_the_server_closes_it():
    ours, theirs = socket.socketpair()
    try:
        stream = _ReadableCheck(_Inner(ours))
        assert stream.get_extra_info("is_readable") is False
        theirs.close()  # the server hangs up on the idle connection
        assert stream.get_extra_info("is_readable") is True
        assert stream.get_extra_info("server_addr") is None  # the rest is the inner stream's
    finally:
        ours.close()


async def test_a_connection_past_its_keepalive_expiry_is_closed_not_reused(srv):
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=0.0)
    transport = GuardedTransport(GuardedBackend(allow_private=True), limits=limits)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):  # each finds the last one expired: closed, and a new one made
            assert (await client.get(srv.url("/feed"))).status_code == 200
        pool: Any = transport._pool
        assert srv.connections == 3
        assert pool.connections == []  # as httpcore's own pool: closed once the answer ends


async def test_an_idle_connection_the_server_closed_is_not_used_again():
    """The server answers one request per connection and hangs up without saying so (no
    ``Connection: close``): the next request must not be sent on the dead connection."""
    accepted = 0
    closed = asyncio.Event()

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with _client(max_connections=4) as client:
            for _ in range(3):
                closed.clear()
                assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
                await asyncio.wait_for(closed.wait(), 5)  # the server has hung up
            assert accepted == 3
    finally:
        server.close()
        await server.wait_closed()


async def test_connections_use_asyncio_locks_and_survive_a_cancelled_request():
    """A request cancelled while its connection waits for the answer: the connection is
    dropped (its state is unknown) and the pool serves the next requests."""
    got_slow = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"GET /slow"):
                    got_slow.set()
                    await reader.read()  # never answers; ends when the client hangs up
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with _client(max_connections=2) as client:
            assert (await client.get(f"{base}/")).text == "ok"
            pool: Any = client._transport._pool  # type: ignore[attr-defined]
            connection = pool.connections[0]
            assert isinstance(connection._request_lock, asyncio.Lock)
            assert isinstance(connection._connection._state_lock, asyncio.Lock)
            slow = asyncio.create_task(client.get(f"{base}/slow"))
            await asyncio.wait_for(got_slow.wait(), 5)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            replies = await asyncio.gather(*(client.get(f"{base}/") for _ in range(10)))
            assert [r.text for r in replies] == ["ok"] * 10
            assert len(pool.connections) <= 2
    finally:
        server.close()
        await server.wait_closed()
