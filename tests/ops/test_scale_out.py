"""Scale-out (issue #7, item 4): many role processes on one Redis server, two of them SIGKILLed.

One ingestor, three classifiers and two notifiers run as real ``python -m runner.cli <role>``
processes against the Redis server at 127.0.0.1:6379 (database 13, flushed before and
after; the test is skipped when that server does not answer). A local HTTP server serves
50 feeds of 100 relevant Cambodia–Laos defence items each; one webhook subscription points at
a local receiver that verifies every request's Standard Webhooks signature.

Mid-run one classifier is SIGKILLed (some but not all items classified) and restarted under
its consumer name, then one notifier (some but not all alerts received) likewise. At the end,
by side effect: every item is stored once and classified once (``items_classified`` equals
the number of items, every item has labels, the classified stream holds one entry per item),
and the receiver holds one alert per story, each exactly once by ``webhook-id`` (a repeated
id is a redelivery of the same alert, never a second alert). Nothing is dead-lettered.

Item texts are random pseudo-words around a few defence terms, so items are not
near-duplicates; the expected number of alerts is still taken from the stored story ids
(one alert per subscription and story), not assumed to be one per item.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from core import keys
from core.models import item_id_for
from tests.conftest import wait_until
from tests.ingestor.httpserver import TestServer
from tests.notifier.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/13"
FEEDS = 50
PER_FEED = 100
N_ITEMS = FEEDS * PER_FEED
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "to",
    "vek",
    "san",
    "phu",
    "dor",
    "ny",
    "bel",
    "quo",
    "tam",
    "rik",
    "zu",
    "hon",
    "pey",
    "wat",
    "sel",
    "mun",
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # ~2-3 min on an idle machine


# -- the feeds -----------------------------------------------------------------------------
def _guid(feed: int, i: int) -> str:
    return f"scale-{feed:02d}-{i:03d}"


def _item(rng: random.Random, feed: int, i: int, published: datetime) -> str:
    """One RSS item: defence terms scattered among 40 random pseudo-words, so every item is
    relevant and names Cambodia and Laos, while two items share about one word pair: too
    few to be one story (``classifier.stories.THRESHOLD``)."""
    w = ["".join(rng.choice(SYLLABLES) for _ in range(3)) for _ in range(40)]
    title = f"Cambodian {w[0]} troops {w[1]} Lao {w[2]} border {w[3]}"
    text = f"{' '.join(w[4:20])} drug trafficking {' '.join(w[20:])}."
    guid = _guid(feed, i)
    return (
        f"<item><guid isPermaLink='false'>{guid}</guid><title>{title}</title>"
        f"<link>https://news.test/{guid}</link><description>{text}</description>"
        f"<pubDate>{format_datetime(published)}</pubDate></item>"
    )


def _rss(feed: int, now: datetime) -> bytes:
    rng = random.Random(feed)  # deterministic texts
    items = "".join(
        _item(rng, feed, i, now - timedelta(minutes=feed * PER_FEED + i)) for i in range(PER_FEED)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Outlet {feed}</title>'
        f"<link>https://news.test/</link>{items}</channel></rss>"
    ).encode()


@pytest.fixture
def feed_server() -> Iterator[TestServer]:
    now = datetime.now(UTC).replace(microsecond=0)
    with TestServer() as srv:
        for feed in range(FEEDS):
            srv.route(
                f"/feed{feed}.xml",
                body=_rss(feed, now),
                headers={"content-type": "application/rss+xml"},
            )
        yield srv


# -- Redis ---------------------------------------------------------------------------------
@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=10)
    try:
        c.ping()
    except redis.RedisError as e:
        c.close()
        pytest.skip(f"no Redis server at {REDIS_URL}: {e}")
    c.flushdb()
    yield c
    c.flushdb()
    c.close()


def _stat(c: redis.Redis, name: str) -> int:
    return int(c.hget(keys.STATS, name) or 0)


def _group(c: redis.Redis, stream: str, group: str) -> dict[str, Any] | None:
    try:
        groups = {g["name"]: g for g in c.xinfo_groups(stream)}
    except redis.ResponseError:  # no stream yet
        return None
    return groups.get(group)


def _drained(c: redis.Redis, stream: str, group: str) -> bool:
    """``group`` has read the whole of ``stream`` and acked everything it read."""
    info = _group(c, stream, group)
    last = c.xrevrange(stream, count=1)
    return bool(info and last and info["pending"] == 0 and info["last-delivered-id"] == last[0][0])


def _alerting_done(c: redis.Redis) -> bool:
    """Every item classified, every classified event routed, no delivery due or leased."""
    return (
        _stat(c, "items_classified") == N_ITEMS
        and _drained(c, keys.STREAM_CLASSIFIED, keys.GROUP_NOTIFIER)
        and c.zcard(keys.DUE) == 0
    )


# -- processes -----------------------------------------------------------------------------
class Role:
    """One ``python -m runner.cli <role>`` process under a stable consumer name."""

    def __init__(self, role: str, name: str, env: dict[str, str], logs: Path) -> None:
        self.role, self.name = role, name
        self.env = {**env, "NEWSMON_CONSUMER_NAME": name}
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.logs / f"{self.name}.{self.starts}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runner.cli", self.role],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 15 s; the exit code of a clean stop."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def tail(self, chars: int = 2000) -> str:
        log = self.logs / f"{self.name}.{self.starts}.log"
        return f"--- {log.name}\n" + (
            log.read_text(errors="replace")[-chars:] if log.exists() else ""
        )


def _env(feeds_file: Path, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update(
        NEWSMON_REDIS_URL=REDIS_URL,
        NEWSMON_DATA_DIR=str(data_dir),  # unused with a Redis URL; keeps ./data untouched
        NEWSMON_ALLOW_PRIVATE_NETWORKS="true",
        NEWSMON_LOAD_SEEDS="false",
        NEWSMON_FEEDS_FILE=str(feeds_file),
        NEWSMON_CLAIM_IDLE_MS="3000",
        # A consumer handles its batch serially and nothing refreshes the idle time of the
        # entries still waiting in it, so a batch must take well under CLAIM_IDLE_MS or
        # the other consumers reclaim entries that are in hand (double work; see the report).
        NEWSMON_BUS_BATCH="10",
        NEWSMON_POLL_TICK_S="0.5",
        NEWSMON_HOST_SPACING_S="0",  # every feed is on 127.0.0.1
        NEWSMON_POLL_WORKERS="0",  # two cores: the ingestors poll themselves, no worker processes
        NEWSMON_LOG_FORMAT="json",
    )
    return env


def _subscribe(env: dict[str, str], url: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "runner.cli", "subscriptions", "add", "--webhook", url),
            *("--name", "scale-out", "--relevant-only", "--country", "cambodia", "--json"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    sub: dict[str, Any] = json.loads(done.stdout)
    return sub


# -- the test ------------------------------------------------------------------------------
def test_scale_out_survives_killed_workers(
    tmp_path: Path, client: redis.Redis, feed_server: TestServer
) -> None:
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(
        "feeds:\n"
        + "".join(
            f"  - id: feed{f}\n    url: {feed_server.url(f'/feed{f}.xml')}\n    interval: 1h\n"
            for f in range(FEEDS)
        )
    )
    env = _env(feeds_file, tmp_path / "data")
    with Receiver([]) as receiver:
        sub = _subscribe(env, receiver.url)  # before any notifier routes an item
        receiver.secrets.append(sub["secret"])
        roles = [Role("ingestor", "ingestor-1", env, tmp_path)]
        roles += [Role("classifier", f"classifier-{i}", env, tmp_path) for i in (1, 2, 3)]
        roles += [Role("notifier", f"notifier-{i}", env, tmp_path) for i in (1, 2)]
        for role in roles:
            role.start()
        try:
            _run(client, receiver, roles)
        except BaseException:
            for role in roles:
                print(role.tail())
            raise
        finally:
            codes = {role.name: role.stop() for role in roles}
    assert all(code == 0 for code in codes.values()), codes
    _check_items(client)
    _check_alerts(client, receiver, sub["id"])


def _run(c: redis.Redis, receiver: Receiver, roles: list[Role]) -> None:
    by_name = {role.name: role for role in roles}

    # A classifier dies mid-run: some items classified, not all.
    wait_until(lambda: _stat(c, "items_classified") >= N_ITEMS // 5, timeout=150)
    victim = by_name["classifier-2"]
    victim.kill()
    classified = _stat(c, "items_classified")
    assert classified < N_ITEMS, "every item was classified before the kill: nothing tested"
    victim.start()  # same consumer name: it re-handles its own pending entries first

    # A notifier dies mid-run: some alerts received, not all delivered.
    wait_until(lambda: len(receiver.unique_ids()) >= N_ITEMS // 3, timeout=150)
    victim = by_name["notifier-1"]
    victim.kill()
    assert not _alerting_done(c), "every alert was delivered before the kill: nothing tested"
    victim.start()

    # Everything finishes. A delivery the killed notifier had claimed comes back when its
    # lease (60 s) ends, so allow for that.
    wait_until(lambda: _stat(c, "items_classified") >= N_ITEMS, timeout=200, every=0.2)
    wait_until(lambda: _drained(c, keys.STREAM_ITEMS, keys.GROUP_CLASSIFIER), timeout=30)
    wait_until(lambda: _alerting_done(c), timeout=200, every=0.2)
    dead = {s: c.xlen(s) for s in _dead_streams()}
    assert not any(dead.values()), f"dead-lettered: {dead}"


def _dead_streams() -> list[str]:
    return [
        keys.dead_letter(keys.STREAM_ITEMS),
        keys.dead_letter(keys.STREAM_CLASSIFIED),
        keys.DEAD,
    ]


def _expected_ids() -> set[str]:
    return {item_id_for(guid=_guid(f, i)) for f in range(FEEDS) for i in range(PER_FEED)}


def _check_items(c: redis.Redis) -> None:
    """Stored once, classified once, one classified event each: by side effect."""
    expected = _expected_ids()
    stored = {m.split(":", 1)[1] for m in c.zrange(keys.INDEX_ALL, 0, -1)}
    assert stored == expected, f"{len(expected - stored)} missing, {len(stored - expected)} extra"
    assert _stat(c, "items_ingested") == N_ITEMS
    assert _stat(c, "items_classified") == N_ITEMS
    assert c.xlen(keys.STREAM_ITEMS) == N_ITEMS  # each item published once
    pipe = c.pipeline(transaction=False)
    for item_id in sorted(expected):
        pipe.hget(keys.item_key(item_id), "labels")
    labels = [json.loads(raw) for raw in pipe.execute() if raw]
    assert len(labels) == N_ITEMS, f"{N_ITEMS - len(labels)} items without labels"
    assert all(label["relevant"] and "cambodia" in label["countries"] for label in labels)
    entries: Any = c.xrange(keys.STREAM_CLASSIFIED)  # decoded: str ids and fields
    per_item = Counter(
        json.loads(fields["data"])["item_id"]
        for _id, fields in entries
        if fields["type"] == "item.classified"
    )
    assert set(per_item) == expected
    twice = {i: n for i, n in per_item.items() if n != 1}
    assert not twice, f"classified more than once: {list(twice.items())[:5]}"


def _check_alerts(c: redis.Redis, receiver: Receiver, sub_id: str) -> None:
    """One alert per story, each received exactly once by webhook-id."""
    pipe = c.pipeline(transaction=False)
    for item_id in sorted(_expected_ids()):
        pipe.hget(keys.item_key(item_id), "story")
    stories = set(pipe.execute())
    assert None not in stories, "an item has no story"
    alert_ids = c.zrange(keys.alerts_of(sub_id), 0, -1)
    pipe = c.pipeline(transaction=False)
    for alert_id in alert_ids:
        pipe.hget(keys.alert(alert_id), "data")
    alerts = [json.loads(raw) for raw in pipe.execute()]
    assert {a["story_id"] for a in alerts} == stories, "a story without an alert, or extra"
    assert len(alerts) == len(stories), "a story alerted twice"
    assert all(a["status"] == "delivered" for a in alerts)

    assert not receiver.rejected, f"badly signed requests: {receiver.rejected[:5]}"
    got = Counter(r.webhook_id for r in receiver.requests)
    assert set(got) == {f"msg_{a['id']}" for a in alerts}, "an alert never arrived, or extra"
    assert len(got) == len(stories)
    # A repeated webhook-id is a redelivery (sent, then the sender died before recording
    # it): the same alert of the same story, never a second alert.
    for r in receiver.requests:
        data = r.payload["data"]
        assert r.webhook_id == f"msg_{data['alert_id']}"
        assert data["story"]["id"] in stories
    redelivered = sum(n - 1 for n in got.values())
    print(
        f"\nscale-out: {N_ITEMS} items, {len(stories)} stories, {len(alerts)} alerts, "
        f"{len(receiver.requests)} webhook requests ({redelivered} redeliveries)"
    )
