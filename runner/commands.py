"""Command-line actions that talk to Redis and exit: ``feeds …`` and ``poll``."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import ValidationError

from core.connection import RedisHandle, connect
from core.settings import Settings
from ingestor.feeds import FeedDef, format_interval, parse_interval
from ingestor.poller import PollReport
from ingestor.scheduler import Scheduler
from ingestor.state import FeedRegistry
from runner.roles import make_fetcher, make_parse_pool, make_poller, sync_feeds_file, utcnow


async def _handle(settings: Settings) -> RedisHandle:
    handle = await connect(settings)
    await sync_feeds_file(settings, handle)
    return handle


async def feeds_add(
    settings: Settings,
    url: str,
    name: str | None,
    interval: str | None,
    full_text: bool,
    as_json: bool,
) -> int:
    data: dict[str, Any] = {"url": url, "fetch_full_text": full_text}
    if name:
        data["name"] = name
    if interval:
        data["interval_s"] = parse_interval(interval)
    try:
        feed = FeedDef.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'feed'}: {err['msg']}" for err in e.errors()
        )
        print(f"newsmon: invalid feed: {problems}", file=sys.stderr)
        return 1
    handle = await _handle(settings)
    try:
        added = await FeedRegistry(handle.client).add(feed, now=utcnow())
    finally:
        await handle.close()
    if not added:
        print(f"newsmon: a feed with id {feed.id} already exists", file=sys.stderr)
        return 1
    print(json.dumps(feed.model_dump()) if as_json else f"added {feed.id}  {feed.url}")
    return 0


async def feeds_list(settings: Settings, as_json: bool) -> int:
    handle = await _handle(settings)
    try:
        registry = FeedRegistry(handle.client)
        feeds = await registry.all()
        states = await registry.states([f.id for f in feeds])
    finally:
        await handle.close()
    rows = []
    for feed in feeds:
        state = states.get(feed.id)
        rows.append(
            {**feed.model_dump(), "state": state.model_dump(mode="json") if state else None}
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        st = row["state"] or {}
        health = (
            "gone"
            if st.get("gone")
            else (
                f"{st.get('consecutive_failures', 0)} failures"
                if st.get("consecutive_failures")
                else "ok"
            )
        )
        print(
            f"{row['id']:<40} every {format_interval(row['interval_s']):<6} {health:<12} "
            f"next {st.get('next_check_at', '-')} ({st.get('next_check_reason', '-')})"
        )
        if st.get("last_error"):
            print(f"{'':<40} last error: {st['last_error']}")
    return 0


async def feeds_remove(settings: Settings, feed_id: str) -> int:
    handle = await _handle(settings)
    try:
        removed = await FeedRegistry(handle.client).remove(feed_id)
    finally:
        await handle.close()
    if not removed:
        print(f"newsmon: no feed with id {feed_id}", file=sys.stderr)
        return 1
    print(f"removed {feed_id}")
    return 0


async def poll(settings: Settings, feed_ids: list[str], progress: bool | None = None) -> int:
    """Poll the given feeds (default: every enabled feed) now, print a summary, exit."""
    handle = await _handle(settings)
    try:
        registry = FeedRegistry(handle.client)
        feeds = {f.id: f for f in await registry.all()}
        unknown = [f for f in feed_ids if f not in feeds]
        if unknown:
            print(f"newsmon: no feed with id {', '.join(unknown)}", file=sys.stderr)
            return 1
        chosen = feed_ids or [f.id for f in feeds.values() if f.enabled]
        pool = make_parse_pool(settings) if len(chosen) > 1 else None
        async with make_fetcher(settings) as fetcher:
            scheduler = Scheduler(
                registry,
                make_poller(settings, handle, fetcher, pool),
                utcnow,
                concurrency=settings.poll_concurrency,
            )
            reports = await _with_progress(scheduler, chosen, progress)
        if pool is not None:
            pool.shutdown()
    finally:
        await handle.close()
    _summary(reports)
    return 3 if any(r.outcome == "failed" for r in reports) else 0


async def _with_progress(
    scheduler: Scheduler, feed_ids: list[str], progress: bool | None
) -> list[PollReport]:
    show = progress if progress is not None else (len(feed_ids) >= 10 and sys.stderr.isatty())
    if not show:
        return await scheduler.poll_now(feed_ids)
    from tqdm import tqdm

    bar = tqdm(total=len(feed_ids), unit="feed", file=sys.stderr)
    original = scheduler.poller.poll

    async def counted(feed_id: str) -> PollReport:
        try:
            return await original(feed_id)
        finally:
            bar.update(1)

    scheduler.poller.poll = counted  # type: ignore[method-assign]
    try:
        return await scheduler.poll_now(feed_ids)
    finally:
        bar.close()


def _summary(reports: list[PollReport]) -> None:
    for r in reports:
        detail = f"new {r.new}, updated {r.updated}, seen {r.seen}"
        line = f"{r.feed_id:<40} {r.outcome:<13} {detail}"
        if r.error:
            line += f"  error: {r.error}"
        print(line)
    totals = (sum(r.new for r in reports), sum(r.updated for r in reports))
    failed = sum(1 for r in reports if r.error)
    print(
        f"polled {len(reports)} feeds: {totals[0]} new items, {totals[1]} updated, {failed} failed"
    )
