"""Sending one alert or digest by email over SMTP (aiosmtplib).

- Transport security (``tls``): ``starttls`` requires the server to offer STARTTLS
  (RFC 3207) and upgrades before AUTH and the message: a server that does not offer it gets
  nothing, never the message in plain text. ``implicit`` opens TLS first (RFC 8314 §3,
  port 465). ``none`` is plain SMTP, for a local relay or tests only.
- The message (RFC 5322): multipart/alternative text + HTML with the title, outlet, time,
  each tag with its evidence snippets, and the link; ``Date``, ``From``, ``To``, and a
  ``Message-ID`` derived from the alert id, so every retry carries the same one.
  ``List-Unsubscribe`` (RFC 2369) with an HTTPS URL and ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058 §3.1: one-click, served by the API).
- Header injection: a feed's title is text we do not control; CR and LF (and other control
  characters) are replaced before it becomes the Subject, and ``email.policy.SMTP`` refuses
  any header value that still holds a line break.
- Replies (RFC 5321 §4.2.1): 4yz is transient (retried with backoff by the caller), 5yz is
  permanent (final). Recipients refused while others were accepted are recorded with
  their reply; the message counts as delivered to the rest.

Owns: building and submitting the message. Must not: touch Redis or decide retry times.
"""

from __future__ import annotations

import html
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import TYPE_CHECKING, Final, Literal

import aiosmtplib

from notifier.channels.base import Outcome, SendResult

if TYPE_CHECKING:
    from core.alerts import Alert
    from core.subscriptions import Subscription

TlsMode = Literal["starttls", "implicit", "none"]
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_SNIPPETS_PER_TAG: Final = 3


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    tls: TlsMode = "starttls"
    username: str | None = None
    password: str | None = None
    from_addr: str = "newsmon <newsmon@localhost>"
    unsubscribe_base_url: str = "http://127.0.0.1:8000"  # the API's public base URL
    timeout_s: float = 30.0
    tls_context: ssl.SSLContext | None = None  # default: system CAs, host name checked

    @property
    def domain(self) -> str:
        addr = self.from_addr.rsplit("<", 1)[-1].rstrip(">")
        return addr.rsplit("@", 1)[-1] or "newsmon.invalid"


def one_line(text: str, limit: int = 200) -> str:
    """A header-safe single line: control characters (CR, LF, …) become one space."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def unsubscribe_url(config: SmtpConfig, sub: Subscription) -> str:
    base = config.unsubscribe_base_url.rstrip("/")
    return f"{base}/v1/subscriptions/{sub.id}/unsubscribe?token={sub.unsubscribe_token}"


def _tags(alert: Alert) -> list[tuple[str, list[str]]]:
    """Each label with its evidence snippets (matched text), labels in a stable order."""
    if alert.labels is None:
        return []
    snippets: dict[str, list[str]] = {}
    for m in alert.labels.matches:
        key = f"{m.kind}:{m.label}"
        seen = snippets.setdefault(key, [])
        if m.text not in seen and len(seen) < _SNIPPETS_PER_TAG:
            seen.append(m.text)
    labels = alert.labels
    names = [f"topic:{t}" for t in labels.topics] + [f"official:{o}" for o in labels.officials]
    names += [f"country:{c}" for c in labels.countries]
    return [(n, snippets.get(n, [])) for n in names]


def _text_part(alerts: Sequence[Alert]) -> str:
    blocks = []
    for a in alerts:
        assert a.item is not None
        lines = [
            one_line(a.item.title, 500),
            f"Outlet: {one_line(a.item.outlet or a.item.feed_id)}",
            f"Published: {a.item.published.isoformat()}",
        ]
        for name, snips in _tags(a):
            lines.append(f"  - {name}" + (f": {'; '.join(snips)}" if snips else ""))
        if len(a.sources) > 1:
            lines.append(f"Also reported by {len(a.sources) - 1} other source(s):")
            lines += [
                f"  * {one_line(s.outlet or s.feed_id)}: {s.url or ''}" for s in a.sources[1:]
            ]
        lines.append(f"Link: {a.item.url or '(none)'}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _html_part(alerts: Sequence[Alert]) -> str:
    e = html.escape
    parts = []
    for a in alerts:
        assert a.item is not None
        tags = "".join(
            f"<li><b>{e(n)}</b>{': ' + e('; '.join(s)) if s else ''}</li>" for n, s in _tags(a)
        )
        link = e(a.item.url or "")
        parts.append(
            f'<h2><a href="{link}">{e(one_line(a.item.title, 500))}</a></h2>'
            f"<p>{e(a.item.outlet or a.item.feed_id)} · {e(a.item.published.isoformat())}</p>"
            f"<ul>{tags}</ul>"
        )
    return "<!doctype html><html><body>" + "<hr>".join(parts) + "</body></html>"


def build_message(
    alert: Alert, sub: Subscription, children: Sequence[Alert], config: SmtpConfig
) -> EmailMessage:
    """The RFC 5322 message for an alert (or a digest of ``children``)."""
    assert sub.channel.kind == "email"
    shown = list(children) if alert.kind == "digest" else [alert]
    if alert.kind == "digest":
        subject = f"[newsmon] {sub.name}: {len(shown)} new alert(s)"
    else:
        assert alert.item is not None
        subject = f"[newsmon] {alert.item.title}"
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = one_line(subject)
    msg["From"] = config.from_addr
    msg["To"] = ", ".join(sub.channel.recipients)
    msg["Date"] = format_datetime(alert.created_at)
    msg["Message-ID"] = alert.message_id(config.domain)
    msg["List-Unsubscribe"] = f"<{unsubscribe_url(config, sub)}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058 §3.1
    msg.set_content(_text_part(shown))
    msg.add_alternative(_html_part(shown), subtype="html")
    return msg


def _outcome(code: int) -> Outcome:
    return Outcome.RETRY if 400 <= code < 500 else Outcome.FAILED  # RFC 5321 §4.2.1


class EmailSender:
    """Submits messages to the configured SMTP server, one session per message."""

    def __init__(
        self, config: SmtpConfig, *, monotonic: Callable[[], float] = time.perf_counter
    ) -> None:
        self.config = config
        self._monotonic = monotonic

    async def send(
        self, alert: Alert, sub: Subscription, children: Sequence[Alert] = ()
    ) -> SendResult:
        assert sub.channel.kind == "email"
        msg = build_message(alert, sub, children, self.config)
        started = self._monotonic()

        def result(
            outcome: Outcome, code: int | None, error: str | None, **kw: dict[str, str]
        ) -> SendResult:
            ms = round((self._monotonic() - started) * 1000, 3)
            return SendResult(outcome, code, ms, error, None, kw.get("refused", {}))

        try:
            refused = await self._submit(msg, sub.channel.recipients)
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = {r.recipient: f"{r.code} {r.message}" for r in e.recipients}
            transient = any(400 <= r.code < 500 for r in e.recipients)
            outcome = Outcome.RETRY if transient else Outcome.FAILED
            code = e.recipients[0].code if e.recipients else None
            return result(outcome, code, "every recipient refused", refused=codes)
        except aiosmtplib.SMTPResponseException as e:
            return result(_outcome(e.code), e.code, f"{e.code} {e.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            return result(Outcome.RETRY, None, f"{type(e).__name__}: {e}")
        shown = {k: f"{v.code} {v.message}" for k, v in refused.items()}
        error = f"{len(shown)} recipient(s) refused" if shown else None
        return result(Outcome.DELIVERED, 250, error, refused=shown)

    async def _submit(
        self, msg: EmailMessage, recipients: Sequence[str]
    ) -> dict[str, aiosmtplib.SMTPResponse]:
        c = self.config
        smtp = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.tls == "implicit",
            start_tls=False,  # never opportunistic: explicit below when required
            timeout=c.timeout_s,
            tls_context=c.tls_context,
        )
        await smtp.connect()
        try:
            if c.tls == "starttls":
                # Raises SMTPException when the server does not offer STARTTLS: the message
                # is then never sent in plain text (RFC 3207 §4).
                await smtp.starttls(tls_context=c.tls_context)
            if c.username:
                await smtp.login(c.username, c.password or "")
            refused, _reply = await smtp.send_message(
                msg, sender=_address(c.from_addr), recipients=list(recipients)
            )
            return refused
        finally:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


def _address(value: str) -> str:
    return value.rsplit("<", 1)[-1].rstrip(">").strip()


__all__ = ["EmailSender", "SmtpConfig", "build_message", "datetime"]
