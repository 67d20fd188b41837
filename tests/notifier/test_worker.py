"""The worker end to end on a real Redis: from ``item.classified`` on the bus to one alert per
subscription and story, and the crash of a sender between POST and record."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import keys
from core.alerts import AlertStore
from core.bus import Bus, Consumer, ensure_group
from core.subscriptions import Filter
from tests.conftest import eventually
from tests.notifier.helpers import (
    DELIVERY,
    classified,
    item,
    labels,
    stored,
    webhook_sub,
    wire,
)
from tests.notifier.receiver import Receiver, Reply

ROOT = Path(__file__).resolve().parents[2]


async def test_two_outlets_copies_of_one_story_give_one_alert(r):
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url)
        rx.secrets.append(sub.secrets[0].value)
        w = wire(r)
        first, second = item(1, feed="khmertimes"), item(2, feed="vientianetimes")
        await stored(r, first, second)
        await w.worker.handle(classified(first, story="story-1"), DELIVERY)
        await w.worker.handle(classified(second, story="story-1"), DELIVERY)
        [alert] = await AlertStore(r).recent()
        assert [s.feed_id for s in alert.sources] == ["khmertimes", "vientianetimes"]
        assert await w.deliverer.step() == 1
        [req] = rx.requests
        assert len(req.payload["data"]["story"]["sources"]) == 2
        await w.sender.aclose()


async def test_updated_item_alerts_only_when_its_labels_newly_match(r):
    sub = await webhook_sub(r, "http://127.0.0.1:9/", filter=Filter(topics=["joint_exercise"]))
    w = wire(r)
    it = item(1)
    await stored(r, it)
    await w.worker.handle(classified(it, labels(("border_security",))), DELIVERY)
    assert await AlertStore(r).recent() == []
    both = labels(("border_security", "joint_exercise"))
    await w.worker.handle(classified(it, both), DELIVERY)
    await w.worker.handle(classified(it, both), DELIVERY)  # updated again, still matching
    [alert] = await AlertStore(r).recent(subscription_id=sub.id)
    assert alert.status == "pending"
    await w.sender.aclose()


async def test_from_the_bus_to_the_receiver(r):
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url)
        rx.secrets.append(sub.secrets[0].value)
        w = wire(r)
        its = [item(i) for i in range(5)]
        await stored(r, *its)
        await ensure_group(r, keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER)
        await Bus(r).publish_many(keys.STREAM_CLASSIFIED, [classified(i) for i in its])
        consumer = Consumer(
            r, keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER, "t", w.worker.handle, block_ms=10
        )
        stop = asyncio.Event()
        w.deliverer.idle_s = 0.02
        task = asyncio.create_task(w.deliverer.run(stop))

        async def all_arrived() -> bool:
            await consumer.step()
            return len(rx.requests) == 5

        await eventually(all_arrived)
        stop.set()
        await task
        assert not rx.rejected
        await w.sender.aclose()


@pytest.mark.slow
async def test_sigkill_after_post_before_record_redelivers_same_webhook_id(r, redis_url):
    with Receiver([]) as rx:
        sub = await webhook_sub(r, rx.url)
        rx.secrets.append(sub.secrets[0].value)
        hold = threading.Event()
        rx.script.append(Reply(200, hold=hold))  # the first POST is never answered
        it = item(1)
        await stored(r, it)
        await ensure_group(r, keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER)
        await Bus(r).publish(keys.STREAM_CLASSIFIED, classified(it))
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
            [sys.executable, "-m", "tests.notifier.notifier_proc", redis_url], cwd=ROOT
        )
        try:

            async def posted() -> bool:
                return rx.arrived.is_set()

            await eventually(posted, timeout=30)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        hold.set()
        store = AlertStore(r)
        [alert] = await store.recent()
        assert alert.status == "pending" and await store.attempts(alert.id) == []
        w = wire(r)
        assert await w.deliverer.step() == 0  # still leased by the dead process
        w.clock.now = datetime.now(UTC) + timedelta(seconds=61)  # the lease has ended
        assert await w.deliverer.step() == 1
        assert (await store.get(alert.id)).status == "delivered"
        assert len(rx.requests) == 2  # sent twice (at least once)...
        assert rx.unique_ids() == {f"msg_{alert.id}"}  # ...seen once by a deduping receiver
        await w.sender.aclose()
