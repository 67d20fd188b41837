"""The notifier role assembled: routing consumer, deliverer and digest scheduler together.

``runner.roles`` builds one ``Notifier`` with the edges it owns (the SSRF-guarded HTTP
transport, the SMTP settings, the clock) and runs it beside the bus consumer it creates
with ``notifier.worker.handle`` as handler. The three loops share one wake-up event, so an
alert made due by routing or by a digest is sent at once rather than at the next tick.

Owns: wiring the notifier's own parts. Must not: read settings or import another service.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httpx

from core import keys
from notifier.channels.email import EmailSender, SmtpConfig
from notifier.channels.webhook import DEFAULT_TIMEOUT_S, WebhookSender
from notifier.digests import DigestBuilder, DigestScheduler
from notifier.worker import DEFAULT_LEASE_S, Clock, Deliverer, NotifierWorker, utcnow


class Runnable(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class Notifier:
    def __init__(
        self,
        redis: Any,
        *,
        transport: httpx.AsyncBaseTransport,
        smtp: SmtpConfig | None = None,
        clock: Clock = utcnow,
        webhook_timeout_s: float = DEFAULT_TIMEOUT_S,
        concurrency: int = 64,
        lease_s: float = DEFAULT_LEASE_S,
        stream_maxlen: int = keys.STREAM_MAXLEN,
    ) -> None:
        self.wake = asyncio.Event()
        self.worker = NotifierWorker(
            redis, clock=clock, wake=self.wake, stream_maxlen=stream_maxlen
        )
        self.sender = WebhookSender(transport=transport, timeout_s=webhook_timeout_s)
        self.deliverer = Deliverer(
            redis,
            webhook=self.sender,
            email=EmailSender(smtp) if smtp is not None else None,
            clock=clock,
            wake=self.wake,
            concurrency=concurrency,
            lease_s=max(lease_s, webhook_timeout_s * 2),
            stream_maxlen=stream_maxlen,
        )
        self.digests = DigestScheduler(
            DigestBuilder(redis, clock=clock, wake=self.wake, stream_maxlen=stream_maxlen)
        )

    async def run(self, stop: asyncio.Event, consumer: Runnable) -> None:
        """Run until ``stop``: the consumer of ``item.classified``, deliveries, digests."""
        try:
            await asyncio.gather(
                consumer.run(stop), self.deliverer.run(stop), self.digests.run(stop)
            )
        finally:
            await self.sender.aclose()
