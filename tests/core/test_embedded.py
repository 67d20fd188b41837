"""The embedded Redis: AOF persistence across restarts, attaching, restarting after a kill."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import redis

from core.embedded import EmbeddedRedis, owner_pid, socket_path
from tests.conftest import wait_until


def _client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(server.sock), decode_responses=True)


def test_data_survives_a_clean_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    try:
        c = _client(server)
        assert c.config_get("appendonly") == {"appendonly": "yes"}
        assert c.config_get("appendfsync") == {"appendfsync": "everysec"}
        c.set("k", "v")
        c.close()
    finally:
        server.stop()
    assert (tmp_path / "appendonly.aof").exists()
    again = EmbeddedRedis(tmp_path)
    again.start()
    try:
        assert _client(again).get("k") == "v"
    finally:
        again.stop()


def test_a_second_process_attaches_instead_of_starting_another(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        second = EmbeddedRedis(tmp_path)
        second.start()
        assert first.owned and not second.owned
        second.stop()  # not the owner: must not stop the server
        assert first.alive()
    finally:
        first.stop()
    assert not first.alive()


def test_killed_server_is_restarted_with_acked_writes(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    try:
        c = _client(server)
        for i in range(100):
            c.set(f"k{i}", i)  # each SET is acked only after it reached the AOF buffer
        c.close()
        pid = owner_pid(tmp_path)
        assert pid == server.pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: server.process is not None and server.process.poll() is not None)
        assert server.ensure_running() is True
        assert server.pid != pid
        c = _client(server)
        assert [c.get(f"k{i}") for i in range(100)] == [str(i) for i in range(100)]
        assert server.ensure_running() is False
    finally:
        server.stop()


def test_long_data_dirs_get_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    assert len(str(socket_path(deep))) <= 100
    assert socket_path(tmp_path) == tmp_path.resolve() / "redis.sock"
