"""A small scriptable HTTP/1.1 server on 127.0.0.1 for tests (threaded, stdlib only).

Owns: serving canned replies per path (status, headers, body; gzip/deflate/br encoding;
streamed bodies sent chunked; a slow drip of N bytes per second; redirects), and recording
every request it receives (method, path, lower-cased headers, body) and every connection.

Must not: reach anything but its own socket on 127.0.0.1, or sleep in the test's thread.

    with TestServer() as srv:
        srv.route("/feed", body=b"<rss/>", headers={"etag": '"v1"'}, encoding="gzip")
        srv.redirect("/old", "/feed", status=301)
        srv.handle("/dyn", lambda req: Reply(status=304 if req.headers.get("if-none-match")
                                              else 200))
        srv.url("/feed")          # http://127.0.0.1:<port>/feed
        srv.requests_to("/feed")  # [RecordedRequest(...)]
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self, cast

import brotli  # type: ignore[import-untyped]

Body = bytes | Callable[[], Iterable[bytes]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""


@dataclass(frozen=True)
class Reply:
    """One canned response.

    ``body`` is bytes (sent with Content-Length) or a callable returning an iterable of chunks
    (sent with chunked transfer coding unless ``headers`` gives a content-length, so a test can
    serve gigabytes without holding them). ``encoding`` ("gzip", "deflate", "br") compresses a
    bytes body and sets Content-Encoding; for a streamed body pass the header yourself.
    ``drip`` sends the body at that many bytes per second.
    """

    status: int = 200
    body: Body = b""
    headers: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    drip: float | None = None


def encode(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":  # the zlib format, as RFC 9110 §8.4.1.2 says
        return zlib.compress(data)
    if encoding == "br":
        out: bytes = brotli.compress(data)
        return out
    raise ValueError(f"unknown encoding {encoding!r}")


class TestServer:
    """Start with ``with TestServer() as srv`` (or ``start()``/``stop()``)."""

    __test__ = False  # not a pytest test class

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._routes: dict[str, Callable[[RecordedRequest], Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._connections = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting ---

    def route(
        self,
        path: str,
        *,
        status: int = 200,
        body: Body = b"",
        headers: dict[str, str] | None = None,
        encoding: str | None = None,
        drip: float | None = None,
    ) -> None:
        reply = Reply(status, body, dict(headers or {}), encoding, drip)
        self.handle(path, lambda _request: reply)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.route(path, status=status, headers={"location": location})

    def handle(self, path: str, respond: Callable[[RecordedRequest], Reply]) -> None:
        """Answer ``path`` (exact, query included if given) with ``respond(request)``."""
        with self._lock:
            self._routes[path] = respond

    # --- inspection ---

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://{self._host}:{self.port}{path}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        with self._lock:
            return self._connections

    # --- lifecycle ---

    def start(self) -> Self:
        self._httpd = _HTTPServer(self, (self._host, 0), _Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # so stop() returns promptly
            name="TestServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends drips
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            lingering = list(self._open)
        for sock in lingering:  # idle keep-alive connections
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- used by the handler thread ---

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open.add(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _reply_for(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            respond = self._routes.get(request.path)
        if respond is None:
            return Reply(status=404, body=b"no route\n")
        return respond(request)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's 5 drops connections from concurrent pollers

    def __init__(
        self, owner: TestServer, address: tuple[str, int], handler: type[_Handler]
    ) -> None:
        super().__init__(address, handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def owner(self) -> TestServer:
        return cast(_HTTPServer, self.server).owner

    def setup(self) -> None:
        super().setup()
        self.owner._opened(self.connection)

    def finish(self) -> None:
        self.owner._closed(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.owner._reply_for(request)
        try:
            self._send(reply, head=self.command == "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: fine

    def _send(self, reply: Reply, *, head: bool) -> None:
        headers = {k.lower(): v for k, v in reply.headers.items()}
        body = reply.body
        if isinstance(body, bytes) and reply.encoding:
            body = encode(body, reply.encoding)
            headers["content-encoding"] = reply.encoding
        chunked = False
        if isinstance(body, bytes):
            headers.setdefault("content-length", str(len(body)))
        elif "content-length" not in headers:
            headers["transfer-encoding"] = "chunked"
            chunked = True
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        no_body = head or reply.status in (204, 304) or 100 <= reply.status < 200
        if not no_body:
            chunks = [body] if isinstance(body, bytes) else body()
            self._write(chunks, chunked=chunked, drip=reply.drip)
        self.wfile.flush()

    def _write(self, chunks: Iterable[bytes], *, chunked: bool, drip: float | None) -> None:
        stopping = self.owner._stopping
        for chunk in _dripped(chunks, drip, stopping):
            if stopping.is_set():
                self.close_connection = True
                return
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def _dripped(
    chunks: Iterable[bytes], drip: float | None, stopping: threading.Event
) -> Iterator[bytes]:
    """The chunks as they are, or one byte every 1/drip seconds."""
    if drip is None:
        yield from chunks
        return
    for chunk in chunks:
        for i in range(len(chunk)):
            yield chunk[i : i + 1]
            if stopping.wait(1 / drip):  # the server thread paces itself; returns on stop
                return
