"""The polling scheduler: APScheduler ticks; Redis says which feeds are due.

Each tick asks the registry for the feeds whose next check has passed and polls them
concurrently (bounded), skipping feeds this process is already polling; a feed polled by
another process since the tick read the list is skipped too (the lease checks it is still
due). "When is a feed due" is state in Redis, not in APScheduler, so any number of
ingestor processes share one schedule and a restart loses nothing.

The polls themselves are a ``Polls``: a ``Poller`` in this process, or worker processes
that each run one (``runner.pollworkers``).

Owns: ticking and concurrency. Must not: fetch, parse or decide timing itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ingestor.poller import PollReport
from ingestor.state import FeedRegistry

log = logging.getLogger(__name__)


class Polls(Protocol):
    """Whatever polls one feed and reports how it went (``ingestor.poller.Poller``)."""

    async def poll(self, feed_id: str, *, due_by: datetime | None = None) -> PollReport: ...


class Scheduler:
    def __init__(
        self,
        registry: FeedRegistry,
        poller: Polls,
        clock: Callable[[], datetime],
        *,
        tick_s: float = 5.0,
        concurrency: int = 20,
    ) -> None:
        self.registry = registry
        self.poller = poller
        self.clock = clock
        self.tick_s = tick_s
        self.limit = asyncio.Semaphore(concurrency)
        self.in_flight: dict[str, asyncio.Task[PollReport | None]] = {}

    async def tick(self) -> int:
        """Start polls for every due feed not already in flight; return how many started."""
        started = 0
        now = self.clock()
        for feed_id in await self.registry.due(now):
            if feed_id not in self.in_flight:
                task = asyncio.create_task(self._guarded(feed_id, now), name=f"poll:{feed_id}")
                self.in_flight[feed_id] = task
                task.add_done_callback(self._forget)
                started += 1
        return started

    def _forget(self, task: asyncio.Task[PollReport | None]) -> None:
        self.in_flight.pop(task.get_name().removeprefix("poll:"), None)

    async def poll_now(
        self,
        feed_ids: Iterable[str],
        on_report: Callable[[PollReport | None], object] | None = None,
    ) -> list[PollReport]:
        """Poll the given feeds now, whatever their schedule, and wait for all of them.
        ``on_report`` is called as each poll ends (None for a poll that crashed)."""

        async def one(feed_id: str) -> PollReport | None:
            report = await self._guarded(feed_id, None)
            if on_report is not None:
                on_report(report)
            return report

        reports = await asyncio.gather(*(one(f) for f in feed_ids))
        return [r for r in reports if r is not None]

    async def _guarded(self, feed_id: str, due_by: datetime | None) -> PollReport | None:
        async with self.limit:
            try:
                return await self.poller.poll(feed_id, due_by=due_by)
            except asyncio.CancelledError:
                raise
            except Exception:  # one feed's bug must not stop the others
                log.exception("poll crashed", extra={"feed_id": feed_id})
                return None

    async def run(self, stop: asyncio.Event, *, grace_s: float = 8.0) -> None:
        """Tick until ``stop``; then let in-flight polls finish (up to ``grace_s``)."""
        sched = AsyncIOScheduler(timezone="UTC")
        sched.add_job(
            self._tick_job,
            "interval",
            seconds=self.tick_s,
            next_run_time=datetime.now(sched.timezone),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        sched.start()
        try:
            await stop.wait()
        finally:
            sched.shutdown(wait=False)
            pending = list(self.in_flight.values())
            if pending:
                _, late = await asyncio.wait(pending, timeout=grace_s)
                for task in late:  # leases expire on their own; the feed is simply due again
                    task.cancel()

    async def _tick_job(self) -> None:
        try:
            await self.tick()
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            log.warning("redis unreachable; next tick retries", extra={"error": str(e)})
        except Exception:
            log.exception("scheduler tick failed; next tick retries")
