"""``NEWSMON_EVENT_LOOP``: the runner's loop is uvloop when installed (``auto``), or asked for."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from core.errors import SettingsError
from runner.loops import event_loop_for, run_async


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_auto_and_uvloop_run_on_uvloop():
    assert run_async(_loop_type(), "auto") is uvloop.Loop
    assert run_async(_loop_type(), "uvloop") is uvloop.Loop


def test_asyncio_runs_on_pythons_own_loop():
    assert not issubclass(run_async(_loop_type(), "asyncio"), uvloop.Loop)


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails
    assert not issubclass(run_async(_loop_type(), "auto"), uvloop.Loop)
    with pytest.raises(SettingsError, match="uvloop is not installed"):
        run_async(_loop_type(), "uvloop")


def test_auto_means_uvloop_for_the_api_alone():
    assert event_loop_for(("api",), "auto") == "auto"
    assert event_loop_for(("ingestor",), "auto") == "asyncio"
    assert event_loop_for(("ingestor", "classifier", "notifier", "api"), "auto") == "asyncio"
    assert event_loop_for((), "auto") == "asyncio"  # commands
    assert event_loop_for(("ingestor",), "uvloop") == "uvloop"
    assert event_loop_for(("api",), "asyncio") == "asyncio"
