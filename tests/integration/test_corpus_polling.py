"""Every file of ../shared/corpus served by a real HTTP server on 127.0.0.1 and polled
through the whole ingestor (fetch → parse → dedupe → store → publish): no crash, no hang,
every feed either yields items or records a precise error, and is scheduled again.
Skipped when the corpus is absent (a user's clone has no ../shared)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.bus import Bus
from core.store import ItemStore
from ingestor.feeds import FeedDef
from ingestor.fetcher import Fetcher
from ingestor.poller import Politeness, Poller
from ingestor.scheduler import Scheduler
from ingestor.service import Ingestor
from ingestor.state import FeedRegistry
from tests.ingestor.httpserver import TestServer
from tests.ingestor.test_corpus import _files, _folders, _headers

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

NOW = datetime(2026, 9, 1, tzinfo=UTC)
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


@pytest.mark.timeout(600)
async def test_every_corpus_file_polled_over_http(r):
    files = [f for folder in _folders() for f in _files(folder)]
    assert len(files) > 2000
    registry, store = FeedRegistry(r), ItemStore(r)
    with TestServer() as srv:
        ids = []
        for n, path in enumerate(files):
            body = path.read_bytes()
            headers = {k: v for k, v in _headers(body).items() if k not in HOP_BY_HOP}
            srv.route(f"/c/{n}", body=body, headers=headers)
            fid = f"c{n}"
            await registry.add(FeedDef(id=fid, url=srv.url(f"/c/{n}"), name=fid), now=NOW)
            ids.append(fid)
        async with Fetcher(allow_private=True, deadline=20.0) as fetcher:
            poller = Poller(
                registry,
                Ingestor(store, Bus(r), lambda: NOW),
                fetcher,
                lambda: NOW,
                politeness=Politeness(host_spacing_s=0.0),
            )
            reports = await Scheduler(registry, poller, lambda: NOW, concurrency=16).poll_now(ids)
    assert len(reports) == len(files)  # no poll crashed
    by_outcome: dict[str, int] = {}
    for report, path in zip(sorted(reports, key=lambda x: int(x.feed_id[1:])), files, strict=True):
        by_outcome[report.outcome] = by_outcome.get(report.outcome, 0) + 1
        assert report.outcome in ("fetched", "failed"), (path, report)
        if report.outcome == "failed":
            assert report.error and len(report.error) > 10, (path, report)
        state = await registry.state(report.feed_id)
        assert state.next_check_at > NOW  # every feed is scheduled again, none dropped
    assert by_outcome["fetched"] > 0.95 * len(files)
    assert await store.count() > 4000
    print(f"corpus over HTTP: {by_outcome}, {await store.count()} items stored")
