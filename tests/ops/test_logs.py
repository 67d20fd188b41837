"""The JSON log format: one object per line, context fields as top-level keys."""

from __future__ import annotations

import json
import logging

import pytest

from core.logs import JsonFormatter, TextFormatter, log_context


def _record(msg: str = "item classified", **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "classifier.worker", "levelno": 20, "msg": msg})
    record.levelname = "INFO"
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_context_fields_are_top_level_keys() -> None:
    line = JsonFormatter().format(
        _record(feed_id="khmer-times", item_id="ab12", msg_id="1-0", stream="nm:stream:items")
    )
    assert "\n" not in line
    out = json.loads(line)
    assert out["event"] == "item classified" and out["level"] == "info"
    assert out["logger"] == "classifier.worker"
    assert {k: out[k] for k in ("feed_id", "item_id", "msg_id", "stream")} == {
        "feed_id": "khmer-times",
        "item_id": "ab12",
        "msg_id": "1-0",
        "stream": "nm:stream:items",
    }


def test_log_context_applies_inside_the_block_only_and_extra_wins() -> None:
    fmt = JsonFormatter()
    with log_context(stream="nm:stream:items", msg_id="1-0"):
        inside = json.loads(fmt.format(_record(msg_id="2-0", item_id="x")))
    outside = json.loads(fmt.format(_record()))
    assert inside["stream"] == "nm:stream:items" and inside["msg_id"] == "2-0"
    assert inside["item_id"] == "x"
    assert "stream" not in outside and "msg_id" not in outside


def test_context_never_overwrites_the_format_keys() -> None:
    out = json.loads(JsonFormatter().format(_record(event="other", level="x")))
    assert out["event"] == "item classified" and out["event_"] == "other"
    assert out["level"] == "info" and out["level_"] == "x"


@pytest.mark.parametrize("fmt", [JsonFormatter(), TextFormatter()])
def test_exceptions_are_kept(fmt: logging.Formatter) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record(exc_info=sys.exc_info())
    assert "ValueError: boom" in fmt.format(record)
