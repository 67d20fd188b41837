"""A classifier consumer in its own process, which stops dead at a chosen point.

    python -m tests.integration.consumer_proc REDIS_URL NAME before|after

It handles ``nm:stream:items`` in the ``classifier`` group with the real classifier worker,
but after reading an entry it blocks forever, either before the side effect (``before``) or
after it and before the ack (``after``), leaving a marker key so the test knows when to
SIGKILL it.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from classifier.engine import Classifier
from classifier.lexicon import load_lexicon
from classifier.worker import ClassifierWorker
from core import keys
from core.bus import Bus, Consumer, Delivery
from core.connection import make_client
from core.events import Event
from core.store import ItemStore

MARKER = "nm:test:consumer_proc"


async def main(url: str, name: str, point: str) -> None:
    r = make_client(url)
    worker = ClassifierWorker(
        ItemStore(r), Bus(r), Classifier(load_lexicon()), lambda: datetime.now(UTC)
    )

    async def handler(event: Event, delivery: Delivery) -> None:
        if point == "after":
            await worker.handle(event, delivery)
        await r.set(MARKER, f"{point}:{delivery.msg_id}")
        await asyncio.Event().wait()  # never returns: the test kills us here

    consumer = Consumer(r, keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER, name, handler, block_ms=50)
    await consumer.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
