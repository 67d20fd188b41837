"""End to end: ``newsmon serve`` as a subprocess on the embedded Redis. The five seeds go in,
are classified over the streams, come out of the API with the taxonomy's labels, survive a
restart of the service, and SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingestor.seeds import load_seed_items
from tests.conftest import process_alive, wait_until
from tests.ingestor.httpserver import TestServer
from tests.integration.test_polling import ITEMS, rss

ROOT = Path(__file__).resolve().parents[2]

# The worked examples of ../shared/taxonomy.md.
EXPECTED = {
    "000": (
        {
            "border_security",
            "disaster_relief",
            "training_exchange",
            "drug_trafficking",
            "transnational_crime",
            "defence_diplomacy",
        },
        {"hun_manet", "khamliang_outhakaysone", "thongloun_sisoulith", "hun_sen"},
    ),
    "001": (
        {"training_exchange", "defence_diplomacy", "border_security", "transnational_crime"},
        {"hun_manet", "khamliang_outhakaysone"},
    ),
    "002": (
        {"defence_diplomacy", "border_security", "transnational_crime", "health_cooperation"},
        {"vong_pisen", "khamliang_outhakaysone", "sonexay_siphandone"},
    ),
    "003": (
        {
            "transnational_crime",
            "terrorism",
            "drug_trafficking",
            "human_trafficking",
            "disaster_relief",
            "border_security",
            "training_exchange",
            "joint_exercise",
            "defence_diplomacy",
            "regional_security",
        },
        {"vong_pisen", "khamliang_outhakaysone"},
    ),
    "004": (
        {
            "defence_diplomacy",
            "regional_security",
            "demining",
            "disaster_relief",
            "cyber_security",
            "drug_trafficking",
            "human_trafficking",
            "transnational_crime",
        },
        {"tea_seiha", "chansamone_chanyalath", "hun_manet", "hun_sen", "tea_banh"},
    ),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, data_dir: Path, port: int, **env: str) -> None:
        self.port = port
        self.log = data_dir.parent / f"serve-{port}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
        clean.update(
            NEWSMON_DATA_DIR=str(data_dir),
            NEWSMON_API_PORT=str(port),
            NEWSMON_LOG_FORMAT="json",
            **env,
        )
        self.logfile = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner.cli", "serve"],
            cwd=ROOT,
            env=clean,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)

    def up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def items(self, **params: str) -> list[dict]:
        return self.http.get("/v1/items", params=params).json()["items"]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(15)
        self.http.close()
        self.logfile.close()
        return code

    def log_events(self) -> list[dict]:
        return [
            json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")
        ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def feed_server() -> Iterator[TestServer]:
    with TestServer() as srv:
        srv.route("/feed.xml", body=rss(ITEMS), headers={"content-type": "application/rss+xml"})
        yield srv


@pytest.mark.slow
def test_serve_tags_seeds_and_keeps_them_across_restart(
    data_dir: Path, tmp_path: Path, feed_server: TestServer
) -> None:
    seeds = {item.guid.rsplit(":", 1)[1][:3]: item for item in load_seed_items(ROOT / "seeds")}
    feeds = tmp_path / "feeds.yaml"  # a local feed: the test never reaches the internet
    feeds.write_text(f"feeds:\n  - id: local\n    url: {feed_server.url('/feed.xml')}\n")
    local = {"NEWSMON_FEEDS_FILE": str(feeds), "NEWSMON_ALLOW_PRIVATE_NETWORKS": "true"}
    svc = Service(data_dir, _free_port(), **local)
    try:
        wait_until(svc.up, timeout=60)
        wait_until(lambda: sum(1 for i in svc.items() if i["labels"]) == 7, timeout=60)
        assert len(svc.items(feed="local")) == 2  # polled, classified, stored
        for key, (topics, officials) in EXPECTED.items():
            body = svc.http.get(f"/v1/items/{seeds[key].id}").json()
            assert set(body["labels"]["topics"]) == topics, key
            assert set(body["labels"]["officials"]) == officials, key
            assert body["labels"]["relevant"] is True
            assert {"cambodia", "laos"} <= set(body["labels"]["countries"])
        # the filters answer from the indexes
        assert [i["id"] for i in svc.items(topic="demining")] == [seeds["004"].id]
        assert len(svc.items(official="khamliang_outhakaysone")) == 4
        assert len(svc.items(relevant="true", country="laos", feed="seeds")) == 5
        assert svc.http.get("/v1/items/0000000000000000").status_code == 404
    finally:
        code = svc.stop()
    assert code == 0, svc.log.read_text()
    events = svc.log_events()
    connected = next(e for e in events if e["event"] == "connected to redis")
    assert connected["redis"] == "embedded" and connected["redis_version"].startswith("6.2")
    assert any(e["event"] == "newsmon stopped" for e in events)
    # The feed was polled by a poll worker process, and the workers stopped with the service.
    workers = next(e for e in events if e["event"] == "poll workers started")["pids"]
    assert workers and svc.proc.pid not in workers
    assert any(e["event"] == "feed polled" and e.get("poll_worker") in workers for e in events)
    assert not any(process_alive(pid) for pid in workers)

    # Second life: no seed loading, the embedded Redis brings the items back from its AOF.
    again = Service(data_dir, _free_port(), NEWSMON_LOAD_SEEDS="false", **local)
    try:
        wait_until(again.up, timeout=60)
        items = again.items()
        assert len(items) == 7 and all(i["labels"] for i in items)
    finally:
        assert again.stop() == 0
