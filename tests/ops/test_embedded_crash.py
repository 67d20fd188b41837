"""Operations: the service survives a SIGKILLed embedded Redis, and every role stops on SIGTERM.

Crash (issue #7, item 5): ``newsmon serve`` runs on the embedded default with a local feed
of many items. Mid-run the embedded redis-server is SIGKILLed; the watchdog restarts it from
its AOF, the clients reconnect, and every item whose ``item.ingested`` entry the classifier
group had acked before the kill is still stored with its labels. Work that was in flight is
finished after the restart, and a feed added afterwards is polled and classified: the
service resumed, not merely survived.

Shutdown: each role, started as its own process, exits 0 within 10 s of SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from core import keys
from core.embedded import owner_pid, socket_path
from tests.conftest import wait_until
from tests.ingestor.httpserver import TestServer
from tests.integration.test_polling import rss
from tests.integration.test_serve import Service, _free_port

ROOT = Path(__file__).resolve().parents[2]
N_ITEMS = 1500
TEXT = "Cambodian and Lao troops met at the border to fight drug trafficking."


def _items(prefix: str, n: int) -> list[tuple[str, str, str]]:
    return [(f"{prefix}{i}", f"Cambodia and Laos border talks {prefix}{i}", TEXT) for i in range(n)]


def _client(data_dir: Path) -> redis.Redis:
    return redis.Redis(
        unix_socket_path=str(socket_path(data_dir)), decode_responses=True, socket_timeout=5
    )


def acked_item_ids(client: redis.Redis) -> set[str]:
    """Items whose item.ingested entry the classifier group has acked: delivered (at or
    before last-delivered-id) and no longer pending. last-delivered is read first, so an
    entry acked in between only makes the answer smaller, never wrong."""
    try:
        groups = {g["name"]: g for g in client.xinfo_groups(keys.STREAM_ITEMS)}
    except redis.ResponseError:  # the stream does not exist yet
        return set()
    if keys.GROUP_CLASSIFIER not in groups:
        return set()
    last = groups[keys.GROUP_CLASSIFIER]["last-delivered-id"]
    pending = {
        row["message_id"]
        for row in client.xpending_range(
            keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER, min="-", max="+", count=100_000
        )
    }
    entries: Any = client.xrange(keys.STREAM_ITEMS, max=last)  # decoded: str ids and fields
    return {
        json.loads(fields["data"])["item"]["id"]
        for msg_id, fields in entries
        if msg_id not in pending and fields.get("type") == "item.ingested"
    }


def drained(client: redis.Redis) -> bool:
    """The classifier group has read the whole stream and acked everything it read."""
    try:
        info = {g["name"]: g for g in client.xinfo_groups(keys.STREAM_ITEMS)}
        last = client.xrevrange(keys.STREAM_ITEMS, count=1)
    except redis.RedisError:
        return False
    group = info.get(keys.GROUP_CLASSIFIER)
    return bool(
        group and last and group["pending"] == 0 and group["last-delivered-id"] == last[0][0]
    )


@pytest.fixture
def feed_server() -> Iterator[TestServer]:
    with TestServer() as srv:
        srv.route(
            "/big.xml",
            body=rss(_items("big", N_ITEMS)),
            headers={"content-type": "application/rss+xml"},
        )
        srv.route(
            "/late.xml",
            body=rss(_items("late", 3)),
            headers={"content-type": "application/rss+xml"},
        )
        yield srv


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_service_survives_a_killed_embedded_redis(tmp_path: Path, feed_server: TestServer) -> None:
    data_dir = tmp_path / "data"
    feeds = tmp_path / "feeds.yaml"  # local feeds only: the test never reaches the internet
    feeds.write_text(f"feeds:\n  - id: big\n    url: {feed_server.url('/big.xml')}\n")
    env = {
        "NEWSMON_FEEDS_FILE": str(feeds),
        "NEWSMON_ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSMON_POLL_TICK_S": "0.5",
        "NEWSMON_BUS_BATCH": "20",  # small batches: the kill lands between many acks
        # The batch in hand when Redis died stays pending in the consumer's own list until
        # XAUTOCLAIM takes it back after claim_idle_ms (60 s by default): shorten the wait.
        "NEWSMON_CLAIM_IDLE_MS": "2000",
    }
    svc = Service(data_dir, _free_port(), **env)
    try:
        wait_until(svc.up, timeout=60)
        client = _client(data_dir)
        # Mid-run: the classifier has acked some of the feed's items but not all of them.
        wait_until(lambda: len(acked_item_ids(client)) >= 50, timeout=60, every=0.01)
        acked = acked_item_ids(client)
        stored_before = client.dbsize()
        client.close()
        old_pid = owner_pid(data_dir)
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)

        # The watchdog restarts the server (a new pid) and the service keeps serving.
        wait_until(lambda: owner_pid(data_dir) not in (None, old_pid), timeout=30)
        wait_until(svc.up, timeout=30)
        client = _client(data_dir)
        assert client.dbsize() > 0, "the AOF was not replayed"
        # Every item acked before the kill is stored, labelled (acked after its side effect).
        missing = [i for i in acked if client.hget(keys.item_key(i), "labels") is None]
        assert not missing, f"{len(missing)} of {len(acked)} acked items lost"
        for item_id in sorted(acked)[:50]:  # and the API serves them with their labels
            body = svc.http.get(f"/v1/items/{item_id}").json()
            assert body["labels"] and body["labels"]["relevant"] is True, body

        # In-flight work is finished after the restart ...
        wait_until(lambda: drained(client), timeout=90)
        # ... and the service resumed: a feed added now is polled and its items classified.
        add = subprocess.run(
            [sys.executable, "-m", "runner.cli", "feeds", "add", feed_server.url("/late.xml")],
            cwd=ROOT,
            env={**_service_env(data_dir), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert add.returncode == 0, add.stderr
        wait_until(lambda: len(svc.items(feed=_feed_id(add.stdout))) == 3, timeout=60)
        wait_until(lambda: all(i["labels"] for i in svc.items(feed=_feed_id(add.stdout))), 30)
        assert all(client.hget(keys.item_key(i), "labels") is not None for i in acked), (
            "items lost after the restart"
        )
        client.close()
        assert stored_before > 0
    finally:
        code = svc.stop()
    assert code == 0, svc.log.read_text()[-5000:]
    events = svc.log_events()
    assert any(e["event"] == "embedded redis is not running; restarting it" for e in events)


def _feed_id(added: str) -> str:
    """``added ID  URL`` → ID."""
    return added.split()[1]


def _service_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env["NEWSMON_DATA_DIR"] = str(data_dir)
    return env


# -- SIGTERM ---------------------------------------------------------------------------------
ROLES = ("ingestor", "classifier", "notifier", "api", "serve")


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_each_role_stops_within_10s_of_sigterm(
    role: str, tmp_path: Path, redis_sync: redis.Redis, redis_url: str
) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds: []\n")
    port = _free_port()
    env = {
        **_service_env(tmp_path / "data"),
        "NEWSMON_REDIS_URL": redis_url,
        "NEWSMON_FEEDS_FILE": str(feeds),
        "NEWSMON_API_PORT": str(port),
        "NEWSMON_LOG_FORMAT": "json",
    }
    log = tmp_path / f"{role}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner.cli", role],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: '"newsmon running"' in log.read_text(), timeout=60)
            if role in ("api", "serve"):
                wait_until(lambda: _answers(port), timeout=30)
            time.sleep(0.5)  # let the loops settle into a blocking read
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(15)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert took < 10.0, f"{role} took {took:.1f}s to stop"
    assert '"newsmon stopped"' in text


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False
