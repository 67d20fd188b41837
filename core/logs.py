"""Logging set-up: one JSON object per line (or plain text for humans).

Owns: the log format. Call ``setup_logging`` once, from the command line entry point.
Context (feed_id, item_id, msg_id, stream) is passed with ``extra={...}``, or for a whole
block of code with ``log_context(...)``, and shows up as top-level keys. The four keys of
the format itself (ts, level, logger, event) are never overwritten by context: a clashing
key is kept with a trailing underscore.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_CONTEXT: ContextVar[dict[str, object]] = ContextVar("newsmon_log_context", default={})  # noqa: B039 - never mutated, only replaced
# Libraries that log every routine step at INFO (a scheduler tick, an HTTP request).
_NOISY = ("uvicorn.access", "httpx", "apscheduler")


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add ``fields`` to every record logged inside the block (this task only)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _context(record: logging.LogRecord) -> dict[str, object]:
    """The record's context: the ``log_context`` fields, then its own ``extra``."""
    fields = dict(_CONTEXT.get())
    for key, value in vars(record).items():
        if key not in _RESERVED and not key.startswith("_"):
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in _context(record).items():
            out[f"{key}_" if key in out else key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = _context(record)
        base = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        if extra:
            base += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


__all__ = ["JsonFormatter", "TextFormatter", "log_context", "setup_logging"]
