"""``newsmon poll`` and ``newsmon feeds`` as real processes: two ingestor processes never
fetch one feed at the same moment (the lease in Redis), and the feeds commands work."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import process_alive, wait_until
from tests.ingestor.httpserver import RecordedRequest, Reply, TestServer
from tests.integration.test_polling import ITEMS, rss

ROOT = Path(__file__).resolve().parents[2]


def _env(redis_url: str, feeds_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update(
        NEWSMON_REDIS_URL=redis_url,
        NEWSMON_FEEDS_FILE=str(feeds_file),
        NEWSMON_ALLOW_PRIVATE_NETWORKS="true",
        NEWSMON_LOG_LEVEL="WARNING",
        NEWSMON_HOST_SPACING_S="0",
    )
    return env


def _newsmon(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_never_poll_one_feed_at_once(redis_sync, redis_url, tmp_path):
    release = threading.Event()
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(_req: RecordedRequest) -> Reply:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        release.wait(30)  # held until the second process has tried
        with lock:
            active["now"] -= 1
        return Reply(body=rss(ITEMS))

    with TestServer() as srv:
        srv.handle("/feed", slow)
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text(f"feeds:\n  - id: shared\n    url: {srv.url('/feed')}\n")
        env = _env(redis_url, feeds)
        first = _newsmon(env, "poll", "--once", "shared")
        wait_until(lambda: len(srv.requests_to("/feed")) == 1, timeout=60)
        second = _newsmon(env, "poll", "--once", "shared")
        out2, err2 = second.communicate(timeout=60)
        release.set()
        out1, err1 = first.communicate(timeout=60)
    assert second.returncode == 0, err2
    assert "skipped" in out2 and "polled by another process" in out2
    assert first.returncode == 0, err1
    assert "new 2" in out1
    assert active["max"] == 1 and len(srv.requests_to("/feed")) == 1


@pytest.mark.slow
def test_feeds_add_list_remove(redis_sync, redis_url, tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds: []\n")
    env = _env(redis_url, feeds)
    add = _newsmon(
        env,
        "feeds",
        "add",
        "https://example.org/feed.xml",
        "--name",
        "Example",
        "--interval",
        "30m",
        "--json",
    )
    out, err = add.communicate(timeout=60)
    assert add.returncode == 0, err
    assert json.loads(out)["id"] == "example" and json.loads(out)["interval_s"] == 1800
    listed = _newsmon(env, "feeds", "list", "--json")
    out, err = listed.communicate(timeout=60)
    [row] = json.loads(out)
    assert row["id"] == "example" and row["state"]["next_check_reason"] == "new feed"
    bad = _newsmon(env, "feeds", "add", "ftp://example.org/x", "--interval", "10s")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 1 and err.startswith("newsmon: ") and err.count("\n") == 1
    rm = _newsmon(env, "feeds", "remove", "example")
    assert rm.wait(60) == 0
    again = _newsmon(env, "feeds", "remove", "example")
    assert again.wait(60) == 1


@pytest.mark.slow
def test_poll_spreads_many_feeds_over_worker_processes_with_a_progress_bar(
    redis_sync, redis_url, tmp_path
):
    names = [f"feed-{n:02d}" for n in range(12)]
    with TestServer() as srv:
        for n, name in enumerate(names):
            items = [
                (f"{name}-{i}", f"Story {i} of {name}", "Lao and Cambodian officers")
                for i in range(n % 3 + 1)
            ]
            srv.route(f"/{name}", body=rss(items))
        srv.route("/down", status=500)
        feeds = tmp_path / "feeds.yaml"
        entries = [f"  - id: {name}\n    url: {srv.url('/' + name)}\n" for name in [*names, "down"]]
        feeds.write_text("feeds:\n" + "".join(entries))
        env = {**_env(redis_url, feeds), "NEWSMON_POLL_WORKERS": "2", "NEWSMON_LOG_LEVEL": "INFO"}
        proc = _newsmon(env, "poll", "--progress")
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # one feed failed
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("feed-")}
    assert sorted(lines) == names
    for n, name in enumerate(names):
        assert f"new {n % 3 + 1}," in lines[name]
    assert "HTTP 500" in next(line for line in out.splitlines() if line.startswith("down"))
    assert "polled 13 feeds: 24 new items, 0 updated, 1 failed" in out
    assert "13/13" in err  # the progress bar reached the end
    # The workers' log lines share stderr with the bar (written with "\r", no newline).
    pieces = re.split(r"[\r\n]", err)
    logged = [json.loads(p[p.index('{"') :]) for p in pieces if '{"' in p]
    workers = next(e for e in logged if e["event"] == "poll workers started")["pids"]
    assert len(workers) == 2 and proc.pid not in workers
    polled_by = {e["feed_id"]: e.get("poll_worker") for e in logged if e["event"] == "feed polled"}
    assert sorted(polled_by) == sorted([*names, "down"]) and set(polled_by.values()) <= set(workers)
    assert not any(process_alive(pid) for pid in workers)
