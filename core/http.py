"""The SSRF guard at connect time, for every outbound HTTP client newsmon builds (feed
fetches, full-text pages, webhooks).

Owns: ``GuardedBackend``, an httpcore network backend that resolves a host itself, vets every
address with ``core.guard.forbidden_reason`` (or a given policy) and connects to a vetted
address, never to the name; ``GuardedTransport``, httpx's transport over it; ``resolve``; and
``Blocked``, raised when the guard refuses. Redirects go through it too, since every new
origin opens a new connection.

Must not: decide what to fetch, follow redirects, read settings, or know feeds or webhooks:
whether private networks are allowed (``NEWSMON_ALLOW_PRIVATE_NETWORKS``) is the caller's
business. Callers wrap ``Blocked`` in their own errors (``ingestor.fetcher.Blocked``, a
``FetchError``) or record it (a webhook attempt that fails for good).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

import httpcore
import httpx
from httpcore._utils import is_socket_readable

from core.errors import NewsmonError
from core.guard import forbidden_reason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
# (host as in the URL, port, one address it resolved to) -> why not, or None to allow.
Policy = Callable[[str, int, IPAddress], str | None]

# Keep every connection the pool may open: with fewer kept alive than feeds polled at once,
# each round closed and reopened the surplus (a new TCP handshake per 304).
DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=100)


class Blocked(NewsmonError):
    """The SSRF guard refused to connect: ``host`` resolved to the forbidden ``address``.

    ``url`` is what was being reached (``//host:port`` from the backend, which sees no URL).
    """

    def __init__(self, url: str, host: str, address: str, reason: str) -> None:
        super().__init__(f"{url}: refused to connect to {host} ({address}): {reason}")
        self.url = url
        self.host = host
        self.address = address
        self.reason = reason


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (IP literals included: the
    system resolver turns "0x7f.1" or "2130706433" into 127.0.0.1, so they are vetted too)."""
    try:  # a canonical IP literal needs no resolver thread
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(sockaddr[0])
            if ip not in found:
                found.append(ip)
    return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves the host itself, refuses the connection if
    ANY of its addresses is forbidden, and then connects to a vetted address, never to the
    name: a DNS answer that changes between the check and the connect (rebinding) is never
    used. Redirects go through here too, since every new origin opens a new connection.

    TLS still verifies the original host name: httpcore calls ``connect_tcp(host=<URL host>)``
    and then, on the stream we return, ``start_tls(ssl_context, server_hostname=<URL host>)``.
    We only change where the TCP socket goes, so SNI and certificate checking (the context has
    ``check_hostname=True``) are against the name in the URL, not the IP we dialled.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        policy: Policy | None = None,
        resolver: Resolver = resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy: Policy = policy or (_allow_all if allow_private else _guard_policy)
        self._resolver = resolver
        self._inner = inner or AsyncioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.vet(host, port, timeout)
        last_error: Exception = httpcore.ConnectError(f"no address for {host}")
        for ip in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as e:
                last_error = e
            else:
                # Ours answers "is the idle connection closed?" cheaply itself; another
                # backend's stream (anyio's) gets the cheap check around it.
                return stream if isinstance(stream, _AsyncioStream) else _ReadableCheck(stream)
        raise last_error

    async def vet(self, host: str, port: int, limit: float | None) -> Sequence[IPAddress]:
        """Every address ``host`` resolves to, each allowed by the policy: ``Blocked`` if ANY
        is not (we must not let the OS pick a forbidden one later). A connection is then made
        to one of these addresses, never to the name (``core.http11`` does the same)."""
        addresses = await self._resolve(host, port, limit)
        for ip in addresses:
            reason = self._policy(host, port, ip)
            if reason is not None:
                raise Blocked(f"//{host}:{port}", host, str(ip), reason)
        return addresses

    async def _resolve(self, host: str, port: int, limit: float | None) -> Sequence[IPAddress]:
        try:
            async with asyncio.timeout(limit):
                return await self._resolver(host, port)
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {limit} s") from e
        except OSError as e:  # socket.gaierror
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(f"unix sockets are not fetched ({path})")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _guard_policy(host: str, port: int, ip: IPAddress) -> str | None:
    return forbidden_reason(ip)


def _allow_all(host: str, port: int, ip: IPAddress) -> str | None:
    return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP (and TLS on it) through asyncio's own streams: what httpcore's anyio backend does
    on asyncio, without anyio's cancel scope, checkpoint and sniffio lookup around every read
    and write (~10 % of a 304's CPU). Errors and timeouts map to httpcore's exceptions as
    its own backends map them."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(
                f"connecting to {host}:{port} took over {timeout} s"
            ) from e
        except OSError as e:
            raise httpcore.ConnectError(_why(e)) from e
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _why(e: BaseException) -> str:
    """An exception's message, or its class name when it has none (a bare ConnectionReset)."""
    return str(e) or type(e).__name__


class _AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as e:
            raise httpcore.ReadTimeout(f"no data within {timeout} s") from e
        except OSError as e:
            raise httpcore.ReadError(_why(e)) from e

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError as e:
            raise httpcore.WriteTimeout(f"could not write within {timeout} s") from e
        except (OSError, RuntimeError) as e:  # RuntimeError: the transport is closed
            raise httpcore.WriteError(_why(e)) from e

    async def aclose(self) -> None:
        self._writer.close()  # the transport closes on its own; no need to wait for it

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as e:
            self._writer.close()
            raise httpcore.ConnectTimeout(f"TLS handshake took over {timeout} s") from e
        except (ssl.SSLError, OSError) as e:  # SSLCertVerificationError is an SSLError
            self._writer.close()
            raise httpcore.ConnectError(_why(e)) from e
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            return self._reader.at_eof() or is_socket_readable(self.get_extra_info("socket"))
        return None


class _ReadableCheck(httpcore.AsyncNetworkStream):
    """A stream that answers ``get_extra_info("is_readable")`` from its socket, found once.

    httpcore asks it of every idle pooled connection each time a request starts or ends (has
    the server closed it?); through anyio each answer built a dict of every attribute of the
    stream first (~20 µs: with 100 pooled connections, milliseconds a request). Everything
    else, TLS included, is the inner stream's."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        return _ReadableCheck(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return is_socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class _Connection(httpcore.AsyncHTTPConnection):
    """httpcore's connection with asyncio's own locks for its request lock and its HTTP/1.1
    connection's state lock. httpcore's ``AsyncLock`` goes through anyio, whose uncontended
    acquire still yields to the event loop and opens a cancel scope: its four acquires and
    releases a request were ~10 % of a 304's CPU. newsmon runs on asyncio only, where
    ``asyncio.Lock`` is the same lock (first come, first served; a cancelled waiter leaves)
    without the detour."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_lock = asyncio.Lock()  # type: ignore[assignment]

    @property
    def _connection(self) -> Any:
        return self._inner

    @_connection.setter
    def _connection(self, inner: Any) -> None:
        # Set once by the upstream code right after connecting: give its lock ours.
        if isinstance(inner, httpcore.AsyncHTTP11Connection):
            inner._state_lock = asyncio.Lock()  # type: ignore[assignment]
        self._inner = inner


class _LinearPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping made linear (httpcore 1.0.x; pinned for it).

    ``_assign_requests_to_connections`` runs whenever a request starts or ends. Upstream it
    counts every connection once per connection to decide whether an idle one is surplus
    (``len([c.is_idle() for c in connections])``: the pool's size, computed in O(n²)) and
    lists every available and every idle connection for each queued request; with 100
    pooled connections and 50 requests in flight it can be most of a 304's CPU (one profiled
    all-304 pass: 2.5 s for 100 feeds, ~980,000 ``is_idle`` calls). This is the same
    decision, in the same order, with the size read once per test and the first matching
    connection found without building lists.
    """

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        # No proxy ever (GuardedTransport): always a direct connection, as upstream makes it.
        return _Connection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=self._http1,
            http2=self._http2,
            retries=self._retries,
            local_address=self._local_address,
            uds=self._uds,
            network_backend=self._network_backend,
            socket_options=self._socket_options,
        )

    async def _close_connections(self, closing: list[Any]) -> None:
        # Upstream opens a cancellation shield (anyio, via sniffio: ~10 µs) on every request
        # start and end to close nothing, almost always.
        if closing:
            await super()._close_connections(closing)

    def _assign_requests_to_connections(self) -> list[Any]:
        closing: list[Any] = []
        connections = self._connections
        now = time.monotonic()
        for connection in list(connections):
            if connection.is_closed():
                connections.remove(connection)
            elif _past_keepalive(connection, now) or (
                connection.is_idle() and len(connections) > self._max_keepalive_connections
            ):
                connections.remove(connection)
                closing.append(connection)
        for pool_request in [r for r in self._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            available = self._available_for(origin, closing)
            if available is not None:
                pool_request.assign_to_connection(available)
            elif len(connections) < self._max_connections:
                connection = self.create_connection(origin)
                connections.append(connection)
                pool_request.assign_to_connection(connection)
            else:
                idle = next((c for c in connections if c.is_idle()), None)
                if idle is not None:
                    connections.remove(idle)
                    closing.append(idle)
                    connection = self.create_connection(origin)
                    connections.append(connection)
                    pool_request.assign_to_connection(connection)
        return closing

    def _available_for(self, origin: Any, closing: list[Any]) -> Any:
        """The first connection that can take a request to ``origin`` now. Whether the
        server closed an idle connection (a poll of its socket) is asked of the one about to
        be used, not of every pooled connection on every request (upstream: n system calls
        a request); one found closed is closed here and the next is tried."""
        connections = self._connections
        for connection in list(connections):
            if not (connection.can_handle_request(origin) and connection.is_available()):
                continue
            if connection.is_idle() and connection.has_expired():
                connections.remove(connection)
                closing.append(connection)
                continue
            return connection
        return None


def _past_keepalive(connection: Any, now: float) -> bool:
    """Whether an idle connection's keep-alive expiry has passed (time only: the socket
    check is ``_available_for``'s). httpcore 1.0's connections keep it as ``_expire_at``."""
    inner = getattr(connection, "_connection", None)
    expire_at = getattr(inner, "_expire_at", None)
    return expire_at is not None and now > expire_at


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, over a connection pool that connects through ``backend``."""

    def __init__(
        self,
        backend: GuardedBackend,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        # Proxies from the environment would connect for us and bypass the guard: trust_env off.
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx offers no public parameter for httpcore's network backend, so replace the
        # (still unused) pool it built with the same pool over our backend. Request building,
        # response wrapping and error mapping stay httpx's own.
        self._pool = _LinearPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
