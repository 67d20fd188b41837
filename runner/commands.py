"""Command-line actions that talk to Redis and exit: ``feeds …`` and ``poll``."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.apikeys import ApiKeys
from core.bus import Bus
from core.connection import RedisHandle, connect
from core.settings import Settings
from core.store import ItemStore
from core.subscriptions import SubscriptionStore
from ingestor.feeds import FeedDef, format_interval, parse_interval
from ingestor.poller import PollReport
from ingestor.scheduler import Scheduler
from ingestor.state import FeedRegistry
from notifier.manage import build, describe
from runner.polling import polls_for, utcnow
from runner.roles import sync_feeds_file


@contextlib.asynccontextmanager
async def _redis(settings: Settings, *, feeds: bool = False) -> AsyncIterator[RedisHandle]:
    """Redis for one command (the embedded server is started or attached to, and stopped
    again if this command started it); ``feeds``: sync the feeds file in first."""
    handle = await connect(settings)
    try:
        if feeds:
            await sync_feeds_file(settings, handle)
        yield handle
    finally:
        await handle.close()


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
    async with _redis(settings, feeds=True) as handle:
        added = await FeedRegistry(handle.client).add(feed, now=utcnow())
    if not added:
        print(f"newsmon: a feed with id {feed.id} already exists", file=sys.stderr)
        return 1
    print(json.dumps(feed.model_dump()) if as_json else f"added {feed.id}  {feed.url}")
    return 0


async def feeds_list(settings: Settings, as_json: bool) -> int:
    async with _redis(settings, feeds=True) as handle:
        registry = FeedRegistry(handle.client)
        feeds = await registry.all()
        states = await registry.states([f.id for f in feeds])
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
    async with _redis(settings, feeds=True) as handle:
        removed = await FeedRegistry(handle.client).remove(feed_id)
    if not removed:
        print(f"newsmon: no feed with id {feed_id}", file=sys.stderr)
        return 1
    print(f"removed {feed_id}")
    return 0


async def poll(settings: Settings, feed_ids: list[str], progress: bool | None = None) -> int:
    """Poll the given feeds (default: every enabled feed) now, print a summary, exit."""
    async with _redis(settings, feeds=True) as handle:
        registry = FeedRegistry(handle.client)
        feeds = {f.id: f for f in await registry.all()}
        unknown = [f for f in feed_ids if f not in feeds]
        if unknown:
            print(f"newsmon: no feed with id {', '.join(unknown)}", file=sys.stderr)
            return 1
        chosen = feed_ids or [f.id for f in feeds.values() if f.enabled]
        async with polls_for(settings, handle, feeds=len(chosen)) as polls:
            scheduler = Scheduler(registry, polls, utcnow, concurrency=settings.poll_concurrency)
            reports = await _with_progress(scheduler, chosen, progress)
    _summary(reports)
    return 3 if any(r.outcome == "failed" for r in reports) else 0


async def _with_progress(
    scheduler: Scheduler, feed_ids: list[str], progress: bool | None
) -> list[PollReport]:
    show = progress if progress is not None else (len(feed_ids) >= 10 and sys.stderr.isatty())
    if not show:
        return await scheduler.poll_now(feed_ids)
    from tqdm import tqdm

    with tqdm(total=len(feed_ids), unit="feed", file=sys.stderr) as bar:
        return await scheduler.poll_now(feed_ids, on_report=lambda _: bar.update(1))


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


async def keys(settings: Settings, args: Any) -> int:
    """``newsmon keys create|list|revoke``: API keys, stored hashed in Redis."""
    async with _redis(settings) as handle:
        store = ApiKeys(handle.client)
        if args.keys_command == "create":
            key, token = await store.create(args.name, args.scope or ["read"], now=utcnow())
            print(token)  # shown once: only its hash is stored
            print(f"key {key.id} ({','.join(key.scopes)}): keep the token above", file=sys.stderr)
            return 0
        if args.keys_command == "list":
            rows = await store.list()
            if args.json:
                print(
                    json.dumps(
                        [k.model_dump(mode="json", exclude={"hash"}) for k in rows], indent=2
                    )
                )
            for k in [] if args.json else rows:
                revoked = f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "active"
                print(f"{k.id}  {k.name:<24} {','.join(k.scopes):<12} {revoked}")
            return 0
        ok = await store.revoke(args.key_id, now=utcnow())
        if not ok:
            print(f"newsmon: no active key with id {args.key_id}", file=sys.stderr)
        return 0 if ok else 1


def offline(settings: Settings, args: Any) -> int:
    """``classify`` and ``eval``: no Redis, the rules only."""
    from classifier import commands as cc
    from classifier.lexicon import load_lexicon

    lexicon = load_lexicon(settings.rules_file)
    if args.command == "classify":
        if args.file == "-":
            return cc.classify_stream(sys.stdin, sys.stdout, lexicon=lexicon)
        with open(args.file, encoding="utf-8") as infile:
            return cc.classify_stream(infile, sys.stdout, lexicon=lexicon)
    return cc.eval_file(Path(args.file), args.json)


async def reclassify(settings: Settings, since: datetime | None) -> int:
    from classifier import commands as cc

    async with _redis(settings) as handle:
        bus = Bus(handle.client, maxlen=settings.stream_maxlen)
        n = await cc.reclassify(ItemStore(handle.client), bus, since=since)
    print(f"{n} items queued for reclassification")
    return 0


async def subscriptions_add(settings: Settings, args: Any) -> int:
    sub = build(  # raises SubscriptionError (a NewsmonError): main prints it, exit 1
        name=args.name,
        webhook=args.webhook,
        emails=args.email,
        now=utcnow(),
        topics=args.topic,
        topics_mode="all" if args.all_topics else "any",
        officials=args.official,
        countries=args.country,
        feeds=args.feed,
        words=args.word,
        relevant_only=args.relevant_only,
        min_score=args.min_score,
        digest=args.digest,
        rate_limit=args.rate_limit,
        secret=args.secret,
    )
    async with _redis(settings) as handle:
        await SubscriptionStore(handle.client).put(sub)
    if args.json:
        print(json.dumps(describe(sub, show_secret=True)))
    else:
        print(f"added {sub.id}  {sub.name}  ({sub.mode})")
        if sub.channel.kind == "webhook":
            print(f"signing secret: {sub.secrets[0].value}")
    return 0


async def subscriptions_list(settings: Settings, as_json: bool) -> int:
    async with _redis(settings) as handle:
        subs = await SubscriptionStore(handle.client).list_all()
    if as_json:
        print(json.dumps([describe(s) for s in subs], indent=2))
        return 0
    for s in subs:
        target = s.channel.url if s.channel.kind == "webhook" else ", ".join(s.channel.recipients)
        state = "enabled" if s.enabled else f"disabled ({s.disabled_reason or 'by hand'})"
        print(f"{s.id}  {s.name}  {s.mode}  {state}  {target}")
    return 0


async def subscriptions_remove(settings: Settings, sub_id: str) -> int:
    async with _redis(settings) as handle:
        removed = await SubscriptionStore(handle.client).remove(sub_id)
    if not removed:
        print(f"newsmon: no subscription with id {sub_id}", file=sys.stderr)
        return 1
    print(f"removed {sub_id}")
    return 0
