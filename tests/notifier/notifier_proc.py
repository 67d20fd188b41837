"""A notifier process for the crash test: consumes ``item.classified`` and delivers.

    python -m tests.notifier.notifier_proc REDIS_URL

The real worker and deliverer (lease 60 s, plain transport to reach 127.0.0.1); the test
SIGKILLs it while its POST is in the receiver's hands.
"""

from __future__ import annotations

import asyncio
import sys

import httpx

from core import keys
from core.bus import Consumer
from core.connection import make_client
from notifier.channels.webhook import WebhookSender
from notifier.worker import Deliverer, NotifierWorker


async def main(url: str) -> None:
    r = make_client(url)
    wake = asyncio.Event()
    sender = WebhookSender(transport=httpx.AsyncHTTPTransport(), timeout_s=60)
    worker = NotifierWorker(r, wake=wake)
    deliverer = Deliverer(r, webhook=sender, wake=wake, lease_s=60, idle_s=0.05)
    consumer = Consumer(
        r, keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER, "doomed", worker.handle, block_ms=50
    )
    stop = asyncio.Event()
    await asyncio.gather(consumer.run(stop), deliverer.run(stop))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
