"""Settings: environment, config file, validation errors, masking, the ``config`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import SettingsError
from core.settings import Settings, load_settings, mask_url
from runner.cli import main


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("NEWSMON_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert s.redis_url is None
    assert s.data_dir == Path("data")
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8000)
    assert (s.seeds_dir / "metadata.json").exists()


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSMON_API_PORT", "9001")
    monkeypatch.setenv("NEWSMON_REDIS_URL", "redis://localhost:6380/2")
    s = load_settings()
    assert s.api_port == 9001 and s.redis_url == "redis://localhost:6380/2"


def test_config_file_below_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "newsmon.toml"
    cfg.write_text('api_port = 9100\nlog_level = "DEBUG"\ndata_dir = "/srv/newsmon"\n')
    monkeypatch.setenv("NEWSMON_LOG_LEVEL", "WARNING")
    s = load_settings(cfg)
    assert s.api_port == 9100
    assert s.log_level == "WARNING"  # the environment wins over the file
    assert s.data_dir == Path("/srv/newsmon")


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("NEWSMON_API_PORT", "eighty", "NEWSMON_API_PORT"),
        ("NEWSMON_API_PORT", "70000", "NEWSMON_API_PORT"),
        ("NEWSMON_REDIS_URL", "http://x", "NEWSMON_REDIS_URL: Value error, scheme must be one of"),
        ("NEWSMON_LOG_LEVEL", "LOUD", "NEWSMON_LOG_LEVEL"),
        ("NEWSMON_MAX_DELIVERIES", "0", "NEWSMON_MAX_DELIVERIES"),
    ],
)
def test_bad_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_unknown_key_in_config_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("api_prot = 1\n")
    with pytest.raises(SettingsError, match="NEWSMON_API_PROT"):
        load_settings(cfg)


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(tmp_path / "absent.toml")


def test_mask_url() -> None:
    assert mask_url("redis://user:hunter2@h:6379/0") == "redis://user:***@h:6379/0"
    assert mask_url("rediss://:hunter2@h:6379") == "rediss://:***@h:6379"
    assert mask_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"


def test_config_command_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSMON_REDIS_URL", "redis://app:s3cret@db:6379/0")
    assert main(["config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["redis_url"] == "redis://app:***@db:6379/0"
    assert "s3cret" not in json.dumps(shown)


def test_bad_setting_stops_the_command_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli", "serve"],
        env={"NEWSMON_API_PORT": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "NEWSMON_API_PORT" in proc.stderr


def test_settings_are_not_built_at_import() -> None:
    import core.settings as mod

    assert not any(isinstance(v, Settings) for v in vars(mod).values())


def test_poll_workers_default_to_one_per_core_and_refuse_a_negative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runner.pollworkers import worker_count

    assert load_settings().poll_workers is None
    assert worker_count(load_settings()) >= 1
    monkeypatch.setenv("NEWSMON_POLL_WORKERS", "0")
    assert worker_count(load_settings()) == 0
    monkeypatch.setenv("NEWSMON_POLL_WORKERS", "-1")
    with pytest.raises(SettingsError, match="NEWSMON_POLL_WORKERS"):
        load_settings()


def test_a_retired_setting_in_the_environment_is_named_at_start(tmp_path: Path) -> None:
    empty = tmp_path / "items.jsonl"
    empty.write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli", "classify", str(empty)],
        env={"NEWSMON_PARSE_WORKERS": "0", "NEWSMON_LOG_FORMAT": "text", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NEWSMON_PARSE_WORKERS is no longer read" in proc.stderr
