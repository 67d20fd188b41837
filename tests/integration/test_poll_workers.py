"""Poll worker processes (``runner.pollworkers``) against a real Redis and a real local HTTP
server: polls carried out in other processes with their reports coming back, a poll that
raises there, a worker killed mid-poll (its polls fail, nothing is lost, another worker
takes its place), stopping with polls in hand, and workers that outlive no parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import keys
from core.settings import Settings
from core.store import ItemStore
from ingestor.feeds import FeedDef
from ingestor.scheduler import Scheduler
from ingestor.state import FeedRegistry
from runner.polling import utcnow
from runner.pollworkers import PollCrashed, PollWorkers, WorkerDied, WorkerStartError
from tests.conftest import eventually, process_alive, wait_until
from tests.ingestor.httpserver import RecordedRequest, Reply, TestServer
from tests.integration.test_polling import rss

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # each test starts worker processes


def _settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        allow_private_networks=True,
        host_spacing_s=0.0,
        log_level="WARNING",
        load_seeds=False,
    )


def _items(feed: str, n: int = 3) -> list[tuple[str, str, str]]:
    return [
        (f"{feed}-{i}", f"{feed} story {i}", "Cambodian and Lao officers met.") for i in range(n)
    ]


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


async def _feeds(registry: FeedRegistry, server: TestServer, names: list[str]) -> list[str]:
    for name in names:
        await registry.add(FeedDef(id=name, url=server.url(f"/{name}"), name=name), now=utcnow())
    return names


async def test_workers_poll_feeds_and_send_the_reports_back(r, redis_url, server):
    names = [f"w{n}" for n in range(6)]
    for name in names:
        server.handle(
            f"/{name}",
            lambda req, name=name: (
                Reply(status=304)
                if req.headers.get("if-none-match") == '"v1"'
                else Reply(body=rss(_items(name)), headers={"etag": '"v1"'})
            ),
        )
    registry = FeedRegistry(r)
    ids = await _feeds(registry, server, names)
    async with PollWorkers(_settings(redis_url), 2) as workers:
        pids = workers.pids
        assert len(set(pids)) == 2 and os.getpid() not in pids
        scheduler = Scheduler(registry, workers, utcnow, concurrency=4)
        seen: list[str] = []
        first = await scheduler.poll_now(ids, on_report=lambda rep: seen.append(rep.feed_id))
        again = await scheduler.poll_now(ids)
    assert sorted(seen) == sorted(ids)
    assert sorted((rep.feed_id, rep.outcome, rep.new) for rep in first) == [
        (name, "fetched", 3) for name in names
    ]
    assert {(rep.outcome, rep.new) for rep in again} == {("not-modified", 0)}
    assert await ItemStore(r).count() == 18
    assert await r.xlen(keys.STREAM_ITEMS) == 18  # each item published once
    for name in names:  # each worker saved the state it polled
        state = await registry.state(name)
        assert state is not None and state.etag == '"v1"' and state.next_check_at > utcnow()
    assert not any(process_alive(pid) for pid in pids)  # close() stopped them


async def test_a_poll_that_raises_in_a_worker_raises_here_with_its_traceback(r, redis_url, server):
    server.handle("/ok", lambda _req: Reply(body=rss(_items("ok"))))
    registry = FeedRegistry(r)
    await _feeds(registry, server, ["ok", "broken"])
    await r.set(keys.feed_state_key("broken"), "{not json")  # a corrupt state record
    async with PollWorkers(_settings(redis_url), 1) as workers:
        with pytest.raises(PollCrashed) as raised:
            await workers.poll("broken")
        report = await workers.poll("ok")  # the worker goes on
    assert "ValidationError" in str(raised.value) and "lease_and_read" in str(raised.value)
    assert (report.outcome, report.new) == ("fetched", 3)


async def test_a_killed_worker_fails_its_polls_loses_nothing_and_is_replaced(r, redis_url, server):
    release = threading.Event()

    def slow(_req: RecordedRequest) -> Reply:
        release.wait(30)
        return Reply(body=rss(_items("slow")))

    server.handle("/slow", slow)
    server.handle("/fast", lambda _req: Reply(body=rss(_items("fast"))))
    registry = FeedRegistry(r)
    await _feeds(registry, server, ["slow", "fast"])
    workers = PollWorkers(_settings(redis_url), 1)
    await workers.start()
    try:
        (victim,) = workers.pids
        polling = asyncio.create_task(workers.poll("slow"))
        await eventually(lambda: asyncio.sleep(0, len(server.requests_to("/slow")) == 1))
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerDied, match=f"poll worker {victim} exited"):
            await polling
        release.set()
        await eventually(lambda: asyncio.sleep(0, len(workers.pids) == 1), timeout=60)
        assert workers.pids != (victim,) and not process_alive(victim)
        report = await workers.poll("fast")
        assert (report.outcome, report.new) == ("fetched", 3)
    finally:
        release.set()
        await workers.close()
    # The killed poll saved nothing: the feed is still due, and its lease (held by the dead
    # process) expires on its own.
    assert "slow" in await registry.due(utcnow())
    assert await ItemStore(r).count() == 3
    assert 0 < await r.pttl(keys.feed_lease_key("slow")) <= 120_000


async def test_close_lets_the_polls_in_hand_finish(r, redis_url, server, capfd):
    release = threading.Event()

    def slow(_req: RecordedRequest) -> Reply:
        release.wait(30)
        return Reply(body=rss(_items("slow")))

    server.handle("/slow", slow)
    registry = FeedRegistry(r)
    await _feeds(registry, server, ["slow"])
    workers = PollWorkers(_settings(redis_url).model_copy(update={"log_level": "INFO"}), 1)
    await workers.start()
    (pid,) = workers.pids
    polling = asyncio.create_task(workers.poll("slow"))
    await eventually(lambda: asyncio.sleep(0, len(server.requests_to("/slow")) == 1))
    closing = asyncio.create_task(workers.close(grace_s=20))
    logged: list[str] = []

    async def told_to_stop() -> bool:  # the worker's own log says it got the stop
        logged.append(capfd.readouterr().err)
        return '"poll worker stopping"' in "".join(logged)

    await eventually(told_to_stop)
    assert '"in_hand": 1' in "".join(logged) and not closing.done()
    release.set()
    report = await polling
    await closing
    assert (report.outcome, report.new) == ("fetched", 3)
    assert not process_alive(pid)


async def test_a_worker_not_ready_in_time_is_killed_and_reported(redis_url):
    workers = PollWorkers(_settings(redis_url), 1, start_timeout_s=0.001)
    with pytest.raises(WorkerStartError, match="not ready in"):
        await workers.start()
    assert workers.pids == ()


def test_workers_stop_when_their_parent_dies(redis_url, tmp_path):
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from core.settings import Settings
        from runner.pollworkers import PollWorkers

        async def main():
            settings = Settings(redis_url={redis_url!r}, log_level="WARNING")
            async with PollWorkers(settings, 2) as workers:
                print(*workers.pids, flush=True)
                await asyncio.sleep(120)

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(process_alive(p) for p in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: not any(process_alive(p) for p in pids), timeout=30)
    finally:
        parent.kill()
        parent.wait(10)
