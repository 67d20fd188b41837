"""SIGKILL a consumer process between read and ack: another consumer completes the entry
and the side effect (the classification) is applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from classifier.engine import Classifier
from classifier.lexicon import load_lexicon
from classifier.worker import ClassifierWorker
from core import keys
from core.bus import Bus, Consumer
from core.store import ItemStore
from ingestor.seeds import load_seed_items
from ingestor.service import Ingestor
from tests.conftest import eventually
from tests.integration.consumer_proc import MARKER

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before", "after"])
async def test_killed_consumer_entry_is_completed_once_by_another(r, redis_url, point):
    store, bus = ItemStore(r), Bus(r)
    seed = load_seed_items(ROOT / "seeds")[0]
    await Ingestor(store, bus, lambda: NOW).accept([seed])
    from core.bus import ensure_group

    await ensure_group(r, keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER)
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [sys.executable, "-m", "tests.integration.consumer_proc", redis_url, "doomed", point],
        cwd=ROOT,
    )
    try:

        async def marked() -> bool:
            return await r.get(MARKER) is not None

        await eventually(marked, timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    pending = await r.xpending(keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER)
    assert pending["pending"] == 1  # read, never acked
    classified_before = (await store.stats()).get("items_classified", 0)
    assert classified_before == (1 if point == "after" else 0)

    worker = ClassifierWorker(store, bus, Classifier(load_lexicon()), lambda: NOW)
    survivor = Consumer(
        r,
        keys.STREAM_ITEMS,
        keys.GROUP_CLASSIFIER,
        "survivor",
        worker.handle,
        claim_idle_ms=50,
        block_ms=20,
    )

    async def completed() -> bool:
        await survivor.step()
        info = await r.xpending(keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER)
        return info["pending"] == 0

    await eventually(completed, timeout=15)
    assert survivor.stats.reclaimed == 1
    assert (await store.stats())["items_classified"] == 1  # exactly once
    assert await r.xlen(keys.STREAM_CLASSIFIED) == 1  # one item.classified event, not two
    stored = await store.get(seed.id)
    assert stored is not None and stored.labels is not None and stored.labels.relevant
