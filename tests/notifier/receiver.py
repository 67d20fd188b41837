"""A webhook receiver on 127.0.0.1 for tests: verifies every request with ``standardwebhooks``.

Owns: serving scripted replies in order (status, headers, a hold that stalls the reply until
released), verifying each request's Standard Webhooks signature with the PyPI
``standardwebhooks`` package against the secrets it was given, and recording every request.
Must not: reach anything but its own socket, or sleep in the test's thread.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # the reply waits until this is set
    hold_s: float = 60.0


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    verified_with: tuple[int, ...]  # indexes of the secrets that verified it
    payload: Any

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: with two notifiers opening up to 64
    # connections each, the overflow was dropped by the kernel and surfaced as ReadErrors
    # and retries, which a real endpoint's backlog (hundreds) would not cause.
    request_queue_size = 1024


class Receiver:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = list(secrets)
        self.script: list[Reply] = []
        self.requests: list[Received] = []
        self.rejected: list[str] = []
        self.arrived = threading.Event()
        self._holds: list[threading.Event] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._serve(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def unique_ids(self) -> set[str]:
        return {r.webhook_id for r in self.requests}

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in h.headers.items()}
        ok: list[int] = []
        payload = None
        for i, secret in enumerate(self.secrets):
            try:
                payload = Webhook(secret).verify(body, headers)
                ok.append(i)
            except WebhookVerificationError:
                pass
        with self._lock:
            reply = self.script.pop(0) if self.script else Reply()
            if ok:
                self.requests.append(Received(headers, body, tuple(ok), payload))
            else:
                self.rejected.append(headers.get("webhook-id", "?"))
        self.arrived.set()
        if reply.hold is not None:
            self._holds.append(reply.hold)
            reply.hold.wait(reply.hold_s)
        status = reply.status if ok else 400
        out = json.dumps({"ok": bool(ok)}).encode()
        try:
            h.send_response(status)
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.send_header("content-length", str(len(out)))
            h.end_headers()
            h.wfile.write(out)
        except OSError:
            pass  # the sender gave up (timeout) or died

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for hold in self._holds + [r.hold for r in self.script if r.hold is not None]:
            hold.set()
        self._server.shutdown()
        self._server.server_close()
