"""An httpx transport that speaks HTTP/1.1 over asyncio's own protocols, parsing responses
with httptools (llhttp, Node.js's parser), and connects only through the SSRF guard.

Why: through httpcore and h11 (pure Python) a request cost ~0.45 ms of client CPU on top
of httpx's own ~0.15 ms; a raw asyncio exchange costs ~0.02 ms (bench/polling.py's
all-304 pass is nearly all of that). Here a request is one write, the response's bytes go
straight from ``data_received`` into llhttp, and a connection is a protocol object: no
streams, locks, anyio or per-request pool scans. httpx's client, request and response
models stay as they are (the issue's "keep httpx's API").

Connections: ``Http11Transport`` resolves and vets every host through
``core.http.GuardedBackend.vet`` (resolve, refuse if ANY address is forbidden) and connects
to a vetted address, never to the name; TLS verifies the URL's host name (SNI and the
certificate). Connections are pooled per origin (scheme, host, port), at most
``max_connections`` in all, idle ones kept up to ``max_keepalive_connections`` and
``keepalive_expiry`` seconds. A connection the server closed while idle is seen as closed
by its protocol (``connection_lost``/``eof_received``) and never reused; one that fails
before a single byte of a response arrives to a request with no body (a GET) is retried
once on a new connection (the server closed it as we wrote).

Responses: the body is streamed (``aiter_raw``) as it arrives, with backpressure (reading
pauses while more than ``_HIGH_WATER`` bytes wait unread); 1xx responses are skipped; a
body runs to its Content-Length, its last chunk, or, with neither, to the connection's
end. A response is read to its end before its connection is reused; closing it early
closes the connection.

Timeouts (httpx's ``Timeout``): ``pool`` for a free connection slot, ``connect`` for
resolving, connecting and the TLS handshake, ``write`` for sending a body, ``read`` for
each wait for response bytes. Failures are httpx's exceptions (``ConnectError``,
``ReadTimeout``, ``RemoteProtocolError``…); the guard's ``Blocked`` passes through.

Owns: that. Must not: follow redirects, decode content, cap bodies (the caller's), or know
what is fetched. Not supported (refused with ``UnsupportedProtocol``): HTTP/2, proxies,
upgrades, and HEAD (llhttp cannot be told that a response has no body).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final

import httptools
import httpx

from core.http import DEFAULT_LIMITS, GuardedBackend

_HIGH_WATER: Final = 256 * 1024  # unread body bytes at which reading pauses
_LOW_WATER: Final = 64 * 1024  # ... and resumes
_BAD_HEADER_BYTES: Final = (b"\r", b"\n", b"\0")
_DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}

Origin = tuple[bytes, str, int]  # scheme, host, port


class _Connection(asyncio.Protocol):
    """One connection and the response in progress on it (one request at a time)."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.busy = False  # a request was sent and its response is not yet released
        self._writable: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] = self.loop.create_future()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.got_bytes = False
        self.until_close = False
        self._wake: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols (upgrade)"))
        except httptools.HttpParserError as e:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {e}"))

    def eof_received(self) -> bool:
        if self.head.done() and not self.complete and self.until_close and self.error is None:
            self.complete = True  # a body delimited by the end of the connection
            self._wakeup()
        self._closed_by_peer()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_by_peer(exc)
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(httpx.WriteError(f"connection lost: {exc}"))

    def pause_writing(self) -> None:
        self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- httptools callbacks ---------------------------------------------------------------
    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:
            return  # informational: the real response follows
        framed = any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        )
        self.until_close = not framed and self.status not in (204, 304)
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if not body:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wakeup()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim response ends: wait for the final one
            self.status, self.reason, self.headers = 0, b"", []
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wakeup()

    # -- the response in progress ----------------------------------------------------------
    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: a caller that left must not warn
        self._wakeup()
        self.close()

    def _closed_by_peer(self, exc: Exception | None = None) -> None:
        self.closed = True
        if not self.complete:
            why = f": {exc}" if exc else ""
            if not self.head.done():
                message = f"the server closed the connection without a response{why}"
            else:
                message = f"the server closed the connection before the body ended{why}"
            self._fail(httpx.RemoteProtocolError(message))

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def next_chunk(self, limit: float | None) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while not self.chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            self._wake = self.loop.create_future()
            try:
                async with asyncio.timeout(limit):
                    await self._wake
            except TimeoutError as e:
                self.close()
                raise httpx.ReadTimeout(f"no response data within {limit} s") from e
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < _LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    async def drain(self, limit: float | None) -> None:
        if self._writable is None:
            return
        try:
            async with asyncio.timeout(limit):
                await self._writable
        except TimeoutError as e:
            self.close()
            raise httpx.WriteTimeout(f"could not write within {limit} s") from e

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Body(httpx.AsyncByteStream):
    """A response body as it arrives; closing it gives the connection back (read to its
    end) or closes it."""

    def __init__(self, pool: _Pool, conn: _Connection, read_timeout: float | None) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        while (chunk := await conn.next_chunk(self._timeout)) is not None:
            yield chunk

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)


class _Pool:
    def __init__(self, limits: httpx.Limits) -> None:
        self.max_connections = limits.max_connections or 1 << 30
        self.max_idle = limits.max_keepalive_connections
        if self.max_idle is None:
            self.max_idle = self.max_connections
        self.expiry = limits.keepalive_expiry
        self.idle: dict[Origin, list[_Connection]] = {}
        self.idle_count = 0
        self.total = 0  # open connections, idle or busy, and connects in progress
        self.waiters: deque[asyncio.Future[None]] = deque()

    def take_idle(self, origin: Origin, now: float) -> _Connection | None:
        stack = self.idle.get(origin)
        while stack:
            conn = stack.pop()  # the most recently used: the least likely to be closed
            self.idle_count -= 1
            if conn.closed or (self.expiry is not None and now - conn.idle_since > self.expiry):
                self.free()
                continue
            return conn
        return None

    async def slot(self, limit: float | None) -> None:
        """Reserve room for one more connection (closing an idle one for another origin
        when the pool is full), waiting up to ``limit`` seconds."""
        if self.total >= self.max_connections:
            self._close_an_idle()
        try:
            async with asyncio.timeout(limit):
                while self.total >= self.max_connections:
                    waiter = asyncio.get_running_loop().create_future()
                    self.waiters.append(waiter)
                    try:
                        await waiter
                    finally:
                        if waiter in self.waiters:
                            self.waiters.remove(waiter)
        except TimeoutError as e:
            raise httpx.PoolTimeout(f"no free connection within {limit} s") from e
        self.total += 1

    def _close_an_idle(self) -> None:
        for stack in self.idle.values():
            if stack:
                conn = stack.pop(0)  # the oldest
                self.idle_count -= 1
                conn.close()
                self.free()
                return

    def release(self, conn: _Connection) -> None:
        """A response is done with ``conn``: keep it idle for its origin, or close it."""
        if not conn.reusable() or self.idle_count >= (self.max_idle or 0):
            conn.close()
            self.free()
            return
        conn.idle_since = conn.loop.time()
        conn.reused = True
        conn.busy = False
        conn._reset()
        self.idle.setdefault(conn.origin, []).append(conn)
        self.idle_count += 1

    def free(self) -> None:
        """A slot is free again (a connection closed for good, or a connect that failed):
        wake the oldest call waiting for one."""
        self.total -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close_all(self) -> None:
        for stack in self.idle.values():
            for conn in stack:
                conn.close()
        self.idle.clear()
        self.idle_count = 0


class Http11Transport(httpx.AsyncBaseTransport):
    """httpx's transport over ``_Connection``s, each connected through ``backend``'s guard."""

    def __init__(
        self,
        backend: GuardedBackend,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        self._backend = backend
        self._ssl = (
            verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        )
        self._pool = _Pool(limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        if request.method == "HEAD":
            raise httpx.UnsupportedProtocol("HEAD is not supported by this transport")
        scheme = url.raw_scheme
        origin = (scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        head, body = _encode(request)
        loop = asyncio.get_running_loop()
        retried = False
        while True:
            conn = self._pool.take_idle(origin, loop.time())
            if conn is None:
                conn = await self._connect(origin, timeouts, loop)
            try:
                await self._send(conn, head, body, request, timeouts.get("write"))
                await self._wait_head(conn, timeouts.get("read"))
            except httpx.RemoteProtocolError:
                conn.close()
                self._pool.free()
                # The server closed a kept-alive connection as we wrote: once, on a new one.
                if conn.reused and not conn.got_bytes and request.method == "GET" and not retried:
                    retried = True
                    continue
                raise
            except BaseException:  # a timeout, a cancelled caller: the connection is unusable
                conn.close()
                self._pool.free()
                raise
            return httpx.Response(
                conn.status,
                headers=conn.headers,
                stream=_Body(self._pool, conn, timeouts.get("read")),
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": conn.reason},
                request=request,
            )

    async def _connect(
        self, origin: Origin, timeouts: dict[str, float | None], loop: asyncio.AbstractEventLoop
    ) -> _Connection:
        await self._pool.slot(timeouts.get("pool"))
        scheme, host, port = origin
        limit = timeouts.get("connect")
        try:
            try:
                addresses = await self._backend.vet(host, port, limit)
            except Exception as e:  # httpcore's ConnectError/ConnectTimeout from the resolver
                if type(e).__module__.startswith("httpcore"):
                    cls = (
                        httpx.ConnectTimeout
                        if "Timeout" in type(e).__name__
                        else httpx.ConnectError
                    )
                    raise cls(str(e)) from e
                raise
            last: Exception = httpx.ConnectError(f"no address for {host}")
            for ip in addresses:
                conn = _Connection(origin, loop)
                try:
                    async with asyncio.timeout(limit):
                        await loop.create_connection(
                            lambda conn=conn: conn,
                            str(ip),
                            port,
                            ssl=self._ssl if scheme == b"https" else None,
                            server_hostname=host if scheme == b"https" else None,
                        )
                except TimeoutError as e:
                    conn.close()
                    last = httpx.ConnectTimeout(f"connecting to {host}:{port} took over {limit} s")
                    last.__cause__ = e
                except (OSError, ssl.SSLError) as e:  # SSLCertVerificationError is both
                    last = httpx.ConnectError(str(e) or type(e).__name__)
                    last.__cause__ = e
                else:
                    return conn
            raise last
        except BaseException:
            self._pool.free()
            raise

    async def _send(
        self,
        conn: _Connection,
        head: bytes,
        body: bytes | None,
        request: httpx.Request,
        limit: float | None,
    ) -> None:
        if conn.closed or conn.transport is None:
            raise httpx.RemoteProtocolError("the server closed the connection")
        conn.busy = True
        conn.transport.write(head if body is None else head + body)
        if body is None and not isinstance(request.stream, httpx.ByteStream):
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            async for piece in request.stream:  # type: ignore[union-attr]
                if piece:
                    conn.transport.write(
                        b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece
                    )
                    await conn.drain(limit)
            if chunked:
                conn.transport.write(b"0\r\n\r\n")
        await conn.drain(limit)

    async def _wait_head(self, conn: _Connection, limit: float | None) -> None:
        try:
            async with asyncio.timeout(limit):
                await conn.head
        except TimeoutError as e:
            raise httpx.ReadTimeout(f"no response within {limit} s") from e

    async def aclose(self) -> None:
        self._pool.close_all()


def _encode(request: httpx.Request) -> tuple[bytes, bytes | None]:
    """The request line and headers, and the body when it is in memory (None: stream it)."""
    lines = [b"%b %b HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    for name, value in request.headers.raw:
        if any(bad in name or bad in value for bad in _BAD_HEADER_BYTES):
            raise httpx.LocalProtocolError(f"illegal header {name!r}: {value!r}")
        lines.append(b"%b: %b" % (name, value))
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    stream: Any = request.stream
    if isinstance(stream, httpx.ByteStream):
        return head, stream._stream if stream._stream else b""
    return head, None
