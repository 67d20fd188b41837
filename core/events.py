"""Typed, versioned events: the contracts between roles.

An event travels as one stream entry with the fields ``type`` (e.g. ``item.ingested``),
``v`` (schema version), ``id`` (the event's own id, stable across redeliveries: consumers
dedupe on it; repeated outside the body so operators can read it with XRANGE) and ``data``
(the JSON body, which holds the id too). A consumer refuses types and versions it does not
know with ``UnknownEvent``, so a poison entry ends in the dead-letter stream instead of being
misread.

Owns: the event types and their wire encoding. Must not: talk to Redis.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from core.errors import EventError, UnknownEvent
from core.models import Item, Labels


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    """32 hex digits, unique: 128 random bits from ``random`` (seeded from the OS and
    re-seeded in a forked child; an id needs uniqueness, not secrecy), as ``uuid4().hex``
    looks, at a tenth of its cost (a system call per id)."""
    return f"{random.getrandbits(128):032x}"


class Event(BaseModel):
    """Base of every event. Subclasses set ``TYPE`` and ``VERSION``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    event_id: str = Field(default_factory=_new_id)
    occurred_at: datetime = Field(default_factory=_now)


class ItemIngested(Event):
    """A new item was accepted and stored; it awaits classification."""

    TYPE: ClassVar[str] = "item.ingested"
    item: Item


class ItemUpdated(Event):
    """A known item changed (title, text or dates); it must be classified again."""

    TYPE: ClassVar[str] = "item.updated"
    item: Item


class ItemClassified(Event):
    """An item received labels (first time or after a change of item or rules)."""

    TYPE: ClassVar[str] = "item.classified"
    item_id: str
    feed_id: str
    labels: Labels


class AlertEvent(Event):
    """Base of the alert events: an alert's state as committed with the change, and nothing
    a channel needs (no payload, no webhook URL, no recipients, no secret).

    ``occurred_at`` is the alert's ``updated_at``; ``status`` is one of ``core.alerts``'
    statuses; ``attempts`` counts the attempts of the current delivery run.
    """

    alert_id: str
    subscription_id: str
    kind: Literal["alert", "digest"] = "alert"
    item_id: str | None = None  # the story's first item; None for a digest or a test
    story_id: str = ""
    channel: Literal["webhook", "email"]
    status: str
    attempts: int = 0
    test: bool = False
    created_at: datetime
    updated_at: datetime


class AlertCreated(AlertEvent):
    """An alert was stored: routed (``pending``, or ``queued`` for a digest), a digest, or a
    test alert."""

    TYPE: ClassVar[str] = "alert.created"


class AlertDelivered(AlertEvent):
    """A delivery run ended delivered."""

    TYPE: ClassVar[str] = "alert.delivered"


class AlertFailed(AlertEvent):
    """A delivery run ended failed: retries exhausted or refused (also dead-lettered)."""

    TYPE: ClassVar[str] = "alert.failed"


EVENT_TYPES: dict[tuple[str, int], type[Event]] = {
    (cls.TYPE, cls.VERSION): cls
    for cls in (
        ItemIngested,
        ItemUpdated,
        ItemClassified,
        AlertCreated,
        AlertDelivered,
        AlertFailed,
    )
}


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One stream entry (``XADD stream MAXLEN ~ maxlen * fields``) for a writer to append in
    the same atomic write as what it announces (``core.bus.Bus.entry`` builds them;
    ``core.store.ItemStore.upsert_many`` appends them)."""

    stream: str
    fields: dict[str, str]
    maxlen: int
    # For an entry that carries the item it announces: (field, text before, text after) the
    # item's JSON in that field, which the writer puts together (in Redis, for a batch of
    # items: the item's JSON crosses the wire once).
    carries: tuple[str, str, str] | None = None


def encode(event: Event) -> dict[str, str]:
    """The stream entry fields for ``event``."""
    return {
        "type": event.TYPE,
        "v": str(event.VERSION),
        "id": event.event_id,
        "data": event.model_dump_json(),
    }


def item_event_entry(
    cls: type[ItemIngested | ItemUpdated],
    occurred_at: datetime,
    event_id: str | None = None,
) -> tuple[dict[str, str], tuple[str, str, str]]:
    """``encode(cls(item=item, occurred_at=occurred_at))`` without the item: the fields but
    ``data``, and ``data`` as the text before and after the item's JSON (``StreamEntry.
    carries``). Put together, the same bytes as ``encode`` (tests/core/test_events.py)."""
    event_id = event_id or _new_id()
    stamp = to_json(occurred_at).decode()
    fields = {"type": cls.TYPE, "v": str(cls.VERSION), "id": event_id}
    return fields, ("data", f'{{"event_id":"{event_id}","occurred_at":{stamp},"item":', "}")


def decode(fields: Mapping[str, str]) -> Event:
    """The event carried by a stream entry; ``EventError`` when it cannot be read."""
    try:
        key = (fields["type"], int(fields["v"]))
        data = fields["data"]
        fields["id"]
    except (KeyError, ValueError) as e:
        raise EventError(f"entry lacks a valid type, v, id or data field: {e}") from e
    cls = EVENT_TYPES.get(key)
    if cls is None:
        raise UnknownEvent(f"unknown event type {key[0]!r} version {key[1]}")
    try:
        return cls.model_validate_json(data)
    except ValidationError as e:
        raise EventError(f"{key[0]} v{key[1]} body is invalid: {e.errors()[0]['msg']}") from e
