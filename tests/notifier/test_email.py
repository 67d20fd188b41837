"""Email delivery to a real aiosmtpd server on 127.0.0.1: the message is parsed back (text,
HTML, headers); 421 is retried with the same Message-ID, 550 is final; refused recipients
are recorded; CR/LF in a title injects nothing; STARTTLS required is never plaintext."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes
from email.message import Message
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from core.alerts import AlertStore
from core.subscriptions import EmailChannel, Filter, SubscriptionStore, new_subscription
from notifier.channels.email import EmailSender, SmtpConfig
from notifier.worker import Deliverer
from tests.notifier.helpers import DELIVERY, T0, Clock, classified, item, stored, wire


class Handler:
    """Accepts mail, or answers with scripted replies; refuses recipients on request."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.data_replies: list[str] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _config(port: int, tls: Any = "none") -> SmtpConfig:
    return SmtpConfig(
        host="127.0.0.1",
        port=port,
        tls=tls,
        from_addr="newsmon <alerts@newsmon.example>",
        unsubscribe_base_url="https://newsmon.example",
        timeout_s=5,
    )


async def _setup(
    r: Any,
    port: int,
    *,
    recipients: tuple[str, ...] = ("ana@example.org",),
    title: str | None = None,
    tls: str = "none",
) -> Any:
    sub = new_subscription(
        name="desk",
        channel=EmailChannel(recipients=list(recipients)),
        now=T0,
        filter=Filter(topics=["border_security"]),
    )
    await SubscriptionStore(r).put(sub)
    w = wire(r)
    clock = Clock()
    deliverer = Deliverer(r, email=EmailSender(_config(port, tls)), clock=clock, rand=lambda: 0.5)
    it = item(1, title=title)
    await stored(r, it)
    await w.worker.handle(classified(it), DELIVERY)
    [alert] = await AlertStore(r).recent()
    await w.sender.aclose()
    return sub, deliverer, clock, alert


async def test_message_is_multipart_with_headers_and_evidence(r, smtp):
    handler, port = smtp
    title = "Border talks\r\nBcc: evil@attacker.example\r\n\r\nhijacked"
    sub, deliverer, _, alert = await _setup(r, port, title=title)
    assert await deliverer.step() == 1
    assert (await AlertStore(r).get(alert.id)).status == "delivered"
    [msg] = handler.messages
    assert msg["Bcc"] is None  # the title's CR/LF injected nothing
    assert msg["Subject"] == "[newsmon] Border talks Bcc: evil@attacker.example hijacked"
    assert msg["From"] == "newsmon <alerts@newsmon.example>"
    assert msg["Date"] is not None
    assert msg["Message-ID"] == f"<{alert.id}@newsmon.example>"
    assert msg["List-Unsubscribe"] == (
        f"<https://newsmon.example/v1/subscriptions/{sub.id}/unsubscribe"
        f"?token={sub.unsubscribe_token}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for needle in ("Outlet: Khmertimes", "topic:border_security: border", "Link: https://"):
        assert needle in text
    assert "<b>topic:border_security</b>" in html and "hijacked" in html


async def test_421_is_retried_with_the_same_message_id_and_550_is_not(r, smtp):
    handler, port = smtp
    _, deliverer, clock, alert = await _setup(r, port)
    handler.data_replies = ["421 4.3.2 try later"]
    assert await deliverer.step() == 1
    a = await AlertStore(r).get(alert.id)
    assert a.status == "pending" and a.attempts == 1
    clock.advance(60)
    assert await deliverer.step() == 1
    assert (await AlertStore(r).get(alert.id)).status == "delivered"
    assert handler.messages[0]["Message-ID"] == f"<{alert.id}@newsmon.example>"

    await r.flushdb()
    handler.messages.clear()
    _, deliverer, clock, alert = await _setup(r, port)
    handler.data_replies = ["550 5.7.1 rejected"]
    assert await deliverer.step() == 1
    a = await AlertStore(r).get(alert.id)
    assert a.status == "failed" and "550" in a.last_error
    [att] = await AlertStore(r).attempts(alert.id)
    assert (att.outcome, att.status) == ("failed", 550)
    assert len(await AlertStore(r).dead_letters()) == 1


async def test_partially_refused_recipients_are_recorded(r, smtp):
    handler, port = smtp
    handler.refuse = {"gone@example.org"}
    _, deliverer, _, alert = await _setup(
        r, port, recipients=("ana@example.org", "gone@example.org")
    )
    await deliverer.step()
    assert (await AlertStore(r).get(alert.id)).status == "delivered"
    [att] = await AlertStore(r).attempts(alert.id)
    assert list(att.refused) == ["gone@example.org"]
    assert att.refused["gone@example.org"].startswith("550")


async def test_starttls_required_never_falls_back_to_plaintext(r, smtp):
    handler, port = smtp  # aiosmtpd without a TLS context offers no STARTTLS
    _, deliverer, _, alert = await _setup(r, port, tls="starttls")
    await deliverer.step()
    a = await AlertStore(r).get(alert.id)
    assert a.status == "pending" and "STARTTLS" in a.last_error.upper()
    assert handler.messages == []


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A throw-away self-signed certificate for 127.0.0.1 (openssl, no network)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_tls_modes_encrypt_before_the_message(r, tls_files, mode):
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    handler = TlsHandler()
    port = _free_port()
    if mode == "starttls":
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            tls_context=server_ctx,
            require_starttls=True,
        )
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    controller.start()
    try:
        _, deliverer, _, alert = await _setup(r, port, tls=mode)
        config = replace(
            deliverer.email.config, tls_context=ssl.create_default_context(cafile=cert)
        )
        deliverer.email = EmailSender(config)
        await deliverer.step()
        assert (await AlertStore(r).get(alert.id)).status == "delivered"
        assert handler.encrypted == [True]  # the message only ever went over TLS
    finally:
        controller.stop()


class TlsHandler(Handler):
    def __init__(self) -> None:
        super().__init__()
        self.encrypted: list[bool] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.encrypted.append(server.transport.get_extra_info("ssl_object") is not None)
        return await super().handle_DATA(server, session, envelope)
