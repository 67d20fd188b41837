"""Polling one feed: lease (and read) → host slot → fetch → parse → dedupe and publish → new state.

Wires the pure parts (``parser``, ``decider``) to the I/O parts (``fetcher``, ``state``,
the item store and the bus). Every failure of a feed ends as a recorded outcome with a
precise error and a backed-off next check; nothing here raises to the scheduler except
a lost Redis connection.

Owns: the sequence of one poll. Must not: decide timing (``decider``) or parse (``parser``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from ingestor import decider
from ingestor.feeds import FeedDef
from ingestor.fetcher import Fetcher, FetchError, FetchResult
from ingestor.fetcher import RetryLater as FetchRetryLater
from ingestor.fulltext import FullText
from ingestor.parser import FeedParseError, parse_feed
from ingestor.service import Ingestor
from ingestor.state import FeedRegistry

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    feed_id: str
    outcome: str  # fetched | not-modified | gone | retry-later | failed | skipped
    new: int = 0
    updated: int = 0
    seen: int = 0
    error: str | None = None
    next_check_at: datetime | None = None
    next_check_reason: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Politeness:
    lease_ttl_s: float = 120.0
    host_spacing_s: float = 1.0
    max_host_wait_s: float = 60.0


class Poller:
    def __init__(
        self,
        registry: FeedRegistry,
        acceptor: Ingestor,
        fetcher: Fetcher,
        clock: Callable[[], datetime],
        *,
        politeness: Politeness = Politeness(),
        fulltext: FullText | None = None,
        rand: Callable[[], float] = random.random,
        parse_inline: bool = False,
    ) -> None:
        self.registry = registry
        # Parsing is CPU-bound. In a process whose event loop serves other work too (a role
        # polling without workers, `newsmon serve`'s API) it runs in a thread so the loop
        # keeps serving; in a poll worker, which does nothing else, it runs inline (a thread
        # would only add GIL handoffs).
        self.parse_inline = parse_inline
        self.acceptor = acceptor
        self.fetcher = fetcher
        self.clock = clock
        self.politeness = politeness
        self.fulltext = fulltext
        self.rand = rand

    async def poll(self, feed_id: str, *, due_by: datetime | None = None) -> PollReport:
        """Poll one feed now; with ``due_by`` (a scheduler's tick), only if it is still due
        by then."""
        ttl_s = self.politeness.lease_ttl_s
        token, feed, state = await self.registry.lease_and_read(feed_id, ttl_s, due_by=due_by)
        if token is None:  # another ingestor process is polling it, or has just done so
            error = "polled by another process" + ("" if due_by is None else " or no longer due")
            return PollReport(feed_id, "skipped", error=error)
        released = False
        try:
            if feed is None:
                return PollReport(feed_id, "skipped", error="no such feed")
            state = state or decider.initial_state(feed, self.clock())
            if state.gone:
                return PollReport(feed.id, "skipped", error="feed is gone (410)")
            report, new_state = await self._poll_leased(feed, state)
            # Saving the new state releases the lease in the same round trip.
            await self.registry.save_state(feed.id, new_state, release_token=token)
            released = True
            return report
        finally:
            if not released:
                await self.registry.release_lease(feed_id, token)

    async def _poll_leased(
        self, feed: FeedDef, state: decider.FeedState
    ) -> tuple[PollReport, decider.FeedState]:
        if self.politeness.host_spacing_s > 0:
            await self._host_slot(state.url)
        report = PollReport(feed.id, "failed")
        outcome = await self._fetch_and_accept(feed, state, report)
        new_state = decider.next_state(state, feed, outcome, now=self.clock(), rand=self.rand)
        report.next_check_at = new_state.next_check_at
        report.next_check_reason = new_state.next_check_reason
        level = logging.WARNING if report.error else logging.INFO
        log.log(
            level,
            "feed polled",
            extra={
                "feed_id": feed.id,
                "outcome": report.outcome,
                "new": report.new,
                "updated": report.updated,
                "error": report.error,
                "next_check_at": new_state.next_check_at.isoformat(),
                "next_check_reason": new_state.next_check_reason,
            },
        )
        return report, new_state

    async def _fetch_and_accept(
        self, feed: FeedDef, state: decider.FeedState, report: PollReport
    ) -> decider.Outcome:
        try:
            result = await self.fetcher.fetch(
                state.url, etag=state.etag, last_modified=state.last_modified
            )
        except FetchRetryLater as e:
            report.outcome, report.error = "retry-later", str(e)
            return decider.RetryLater(status=e.status, retry_after_s=e.retry_after)
        except FetchError as e:
            report.error = str(e)
            return decider.Failed(error=str(e), status=getattr(e, "status", None))
        if result.gone:
            report.outcome, report.error = "gone", "410 Gone: polling stopped"
            return decider.Gone()
        if result.not_modified:
            report.outcome = "not-modified"
            return decider.NotModified(headers=result.headers)
        return await self._accept(feed, result, report)

    async def _accept(
        self, feed: FeedDef, result: FetchResult, report: PollReport
    ) -> decider.Outcome:
        assert result.body is not None
        try:
            job = functools.partial(
                parse_feed,
                result.body,
                result.headers,
                feed_id=feed.id,
                feed_url=result.url,
                now=self.clock(),
            )
            parsed = job() if self.parse_inline else await asyncio.to_thread(job)
        except FeedParseError as e:
            report.error = str(e)
            return decider.Failed(error=str(e), status=result.status)
        items = parsed.items
        if self.fulltext is not None and feed.fetch_full_text:
            items = await self.fulltext.complete(items, known=self.acceptor.store)
        counts = await self.acceptor.accept(items)
        report.outcome = "fetched"
        report.new, report.updated, report.seen = counts.added, counts.updated, counts.seen
        report.warnings = list(parsed.warnings)
        return decider.Fetched(
            status=result.status,
            headers=result.headers,
            ttl_seconds=parsed.ttl_seconds,
            update_period_seconds=parsed.update_period_seconds,
            new_items=counts.added + counts.updated,
            seen_items=counts.seen,
            etag=result.etag,
            last_modified=result.last_modified,
            permanent_redirect=result.permanent_redirect,
            warnings=parsed.warnings,
        )

    async def _host_slot(self, url: str) -> None:
        """Wait for this host's slot: requests to one host are spaced across all processes."""
        host = (urlsplit(url).hostname or "").lower()
        waited = 0.0
        while waited < self.politeness.max_host_wait_s:
            wait = await self.registry.host_slot(host, self.politeness.host_spacing_s)
            if wait <= 0:
                return
            await asyncio.sleep(wait)
            waited += wait
