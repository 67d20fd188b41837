"""``AsyncioBackend``, the guarded transport's default inner backend: real TCP and real TLS
(a local CA from trustme) through asyncio's streams, with httpcore's error mapping."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpcore
import httpx
import pytest
import trustme

from core.http import AsyncioBackend, GuardedBackend, GuardedTransport


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class _Server:
    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


async def _start(context: ssl.SSLContext | None) -> tuple[_Server, asyncio.Server]:
    srv = _Server()
    server = await asyncio.start_server(srv.serve, "127.0.0.1", 0, ssl=context)
    srv.port = server.sockets[0].getsockname()[1]
    return srv, server


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[_Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    srv, server = await _start(context)
    yield srv
    server.close()
    await server.wait_closed()


def _client(context: ssl.SSLContext) -> httpx.AsyncClient:
    transport = GuardedTransport(GuardedBackend(allow_private=True), verify=context)
    return httpx.AsyncClient(transport=transport)


async def test_tls_is_verified_against_the_url_host_and_its_connection_reused(ca, tls_server):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with _client(context) as client:
        for _ in range(3):
            resp = await client.get(f"https://localhost:{tls_server.port}/")
            assert resp.text == "ok"
        assert tls_server.connections == 1  # kept alive through TLS


async def test_a_certificate_from_an_unknown_ca_is_refused(tls_server):
    async with _client(ssl.create_default_context()) as client:  # trusts the system CAs only
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://localhost:{tls_server.port}/")


async def test_a_certificate_for_another_name_is_refused(ca):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(server_context)
    srv, server = await _start(server_context)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    try:
        async with _client(context) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://localhost:{srv.port}/")
    finally:
        server.close()
        await server.wait_closed()


async def test_plain_tcp_errors_map_to_httpcore_errors():
    backend = AsyncioBackend()
    srv, server = await _start(None)
    server.close()
    await server.wait_closed()  # nothing listens on that port any more
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("127.0.0.1", srv.port, timeout=5)


async def test_a_read_past_its_timeout_is_a_read_timeout():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(1024, timeout=0.05)
        assert stream.get_extra_info("server_addr")[1] == port
        assert stream.get_extra_info("is_readable") is False
        await stream.aclose()
    finally:
        server.close()
        await server.wait_closed()
