"""Running roles: one process runs one role, or all of them (``serve``).

The composition root: the only place that imports every service and wires them to Redis,
the clock and each other through the bus. Nothing imports this module but the CLI.

Shutdown: SIGTERM or SIGINT sets one stop event; consumers finish and ack the batch in
hand, the API stops accepting connections and finishes open requests, then the Redis
connection (and the embedded server, if this process started it) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn

from api.app import create_app
from classifier.engine import Classifier
from classifier.lexicon import load_lexicon
from classifier.watcher import RulesWatcher
from classifier.worker import ClassifierWorker
from core import keys
from core.apikeys import ApiKeys
from core.bus import Bus, Consumer
from core.connection import RedisHandle, connect
from core.embedded import EmbeddedRedis
from core.errors import SettingsError
from core.http import GuardedBackend, GuardedTransport
from core.settings import Settings
from core.store import ItemStore
from ingestor.feeds import load_feeds_file
from ingestor.scheduler import Scheduler
from ingestor.service import Ingestor
from ingestor.state import FeedRegistry
from notifier.channels.email import SmtpConfig
from notifier.service import Notifier
from runner.loops import tune_gc_for_serving
from runner.polling import polls_for, utcnow

log = logging.getLogger(__name__)

ROLES = ("ingestor", "classifier", "notifier", "api")
SHUTDOWN_GRACE_S = 8.0  # + stopping the embedded Redis: about 10 s in all


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runner owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def consumer(
    settings: Settings, handle: RedisHandle, stream: str, group: str, handler: Any
) -> Consumer:
    return Consumer(
        handle.client,
        stream,
        group,
        settings.consumer_name,
        handler,
        batch=settings.bus_batch,
        block_ms=settings.bus_block_ms,
        claim_idle_ms=settings.claim_idle_ms,
        max_deliveries=settings.max_deliveries,
    )


async def _watch_embedded(embedded: EmbeddedRedis, stop: asyncio.Event) -> None:
    """Restart the embedded server if it dies; clients reconnect on their own."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        if not stop.is_set():
            try:
                await asyncio.to_thread(embedded.ensure_running)
            except Exception:
                log.exception("could not restart the embedded redis; retrying")


async def _api(settings: Settings, handle: RedisHandle, stop: asyncio.Event) -> None:
    loopback = settings.api_host in ("127.0.0.1", "::1", "localhost")
    active = await ApiKeys(handle.client).active_count()
    if active == 0 and not loopback:
        raise SettingsError(
            "NEWSMON_API_HOST",
            f"{settings.api_host} is not loopback and no API key exists; "
            "create one with `newsmon keys create` first",
        )
    if active == 0:
        log.warning("no API key configured: the API is open, on loopback only")
    lexicon = load_lexicon(settings.rules_file)
    app = create_app(
        settings,
        handle.client,
        classify=Classifier(lexicon, settings.classifier_engine).classify,
        taxonomy={k: list(v) for k, v in lexicon.labels.items()},
    )
    tune_gc_for_serving()
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,  # open SSE streams must not hold the shutdown
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    log.info("api listening", extra={"host": settings.api_host, "port": settings.api_port})
    await asyncio.wait(
        [task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    server.should_exit = True
    await task
    if not stop.is_set():
        raise RuntimeError("the API server stopped on its own (is the port taken?)")


async def sync_feeds_file(settings: Settings, handle: RedisHandle) -> int:
    """Bring the feeds YAML file into Redis (a missing file is not an error: no feeds)."""
    if not settings.feeds_file.exists():
        log.warning("no feeds file", extra={"feeds_file": str(settings.feeds_file)})
        return 0
    feeds = load_feeds_file(settings.feeds_file)
    changed = await FeedRegistry(handle.client).sync(feeds, now=utcnow())
    log.info("feeds file synced", extra={"feeds": len(feeds), "added_or_changed": changed})
    return changed


async def _ingestor(settings: Settings, handle: RedisHandle, stop: asyncio.Event) -> None:
    ingestor = Ingestor(
        ItemStore(handle.client), Bus(handle.client, maxlen=settings.stream_maxlen), utcnow
    )
    if settings.load_seeds:
        await ingestor.load_seeds(settings)
    await sync_feeds_file(settings, handle)
    async with polls_for(settings, handle) as polls:
        scheduler = Scheduler(
            FeedRegistry(handle.client),
            polls,
            utcnow,
            tick_s=settings.poll_tick_s,
            concurrency=settings.poll_concurrency,
        )
        tune_gc_for_serving()
        # The polls in flight get most of the shutdown grace; the workers' exit the rest.
        await scheduler.run(stop, grace_s=SHUTDOWN_GRACE_S - 3)


async def _classifier(settings: Settings, handle: RedisHandle, stop: asyncio.Event) -> None:
    lexicon = load_lexicon(settings.rules_file)
    engine = Classifier(lexicon, settings.classifier_engine)
    log.info("classifier engine", extra={"engine": engine.engine, "rules": lexicon.version})
    watcher = (
        RulesWatcher(lexicon.source, lexicon=lexicon, interval_s=settings.rules_reload_s)
        if lexicon.source
        else None
    )
    bus = Bus(handle.client, maxlen=settings.stream_maxlen)
    worker = ClassifierWorker(ItemStore(handle.client), bus, engine, utcnow, watcher=watcher)
    c = consumer(settings, handle, keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER, worker.handle)
    await c.run(stop)


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """The SMTP settings of email alerts; None (no email channel) without NEWSMON_SMTP_HOST."""
    if not settings.smtp_host:
        return None
    password = settings.smtp_password
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=password.get_secret_value() if password is not None else None,
        from_addr=settings.smtp_from,
        unsubscribe_base_url=settings.public_base_url,
        timeout_s=settings.smtp_timeout_s,
    )


async def _notifier(settings: Settings, handle: RedisHandle, stop: asyncio.Event) -> None:
    # Webhook URLs pass the same SSRF guard as feeds, at connect time (redirects are never
    # followed for webhooks).
    transport = GuardedTransport(GuardedBackend(allow_private=settings.allow_private_networks))
    notifier = Notifier(
        handle.client,
        transport=transport,
        smtp=smtp_config(settings),
        clock=utcnow,
        webhook_timeout_s=settings.webhook_timeout_s,
        concurrency=settings.notifier_concurrency,
        lease_s=settings.notifier_lease_s,
        stream_maxlen=settings.stream_maxlen,
    )
    c = consumer(
        settings, handle, keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER, notifier.worker.handle
    )
    await notifier.run(stop, c)


RoleFn = Callable[[Settings, RedisHandle, asyncio.Event], Coroutine[Any, Any, None]]
_RUNNERS: dict[str, RoleFn] = {
    "ingestor": _ingestor,
    "classifier": _classifier,
    "notifier": _notifier,
    "api": _api,
}


async def run(settings: Settings, roles: tuple[str, ...]) -> int:
    """Run ``roles`` until SIGTERM/SIGINT; returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    handle = await connect(settings)
    tasks = {
        asyncio.create_task(_RUNNERS[role](settings, handle, stop), name=role) for role in roles
    }
    if handle.embedded is not None:
        tasks.add(
            asyncio.create_task(_watch_embedded(handle.embedded, stop), name="embedded-redis")
        )
    log.info("newsmon running", extra={"roles": list(roles)})
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for task in done - {stopper}:
        if task.exception() is not None:
            log.error(
                "role failed; stopping", extra={"role": task.get_name()}, exc_info=task.exception()
            )
            code = 1
    stop.set()
    log.info("shutting down", extra={"grace_s": SHUTDOWN_GRACE_S})
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
    for task in pending:
        log.error("role did not stop in time; cancelling", extra={"role": task.get_name()})
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await handle.close()
    log.info("newsmon stopped")
    return code
