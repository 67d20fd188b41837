"""Event encoding: typed round trip, versions, and clear errors for what cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import EventError, UnknownEvent
from core.events import ItemClassified, ItemIngested, decode, encode
from core.models import Item, Labels


def _item() -> Item:
    return Item(id="0123456789abcdef", feed_id="f", title="t", published=datetime(2024, 1, 1))


def test_round_trip_keeps_type_and_id() -> None:
    event = ItemIngested(item=_item())
    fields = encode(event)
    assert fields["type"] == "item.ingested" and fields["v"] == "1"
    assert fields["id"] == event.event_id
    back = decode(fields)
    assert back == event and isinstance(back, ItemIngested)
    assert back.item.published.tzinfo is UTC  # naive times are read as UTC


def test_classified_round_trip() -> None:
    event = ItemClassified(item_id="x", feed_id="f", labels=Labels(topics=["demining"]))
    assert decode(encode(event)) == event


@pytest.mark.parametrize(
    ("fields", "error", "text"),
    [
        ({"type": "item.ingested", "v": "2", "id": "x", "data": "{}"}, UnknownEvent, "version 2"),
        ({"type": "alien", "v": "1", "id": "x", "data": "{}"}, UnknownEvent, "'alien'"),
        ({"type": "item.ingested", "v": "one", "id": "x", "data": "{}"}, EventError, "valid"),
        ({"type": "item.ingested", "v": "1", "data": "{}"}, EventError, "lacks"),
        ({"type": "item.ingested", "v": "1", "id": "x", "data": "{"}, EventError, "invalid"),
        (
            {"type": "item.ingested", "v": "1", "id": "x", "data": '{"item": 3}'},
            EventError,
            "invalid",
        ),
    ],
)
def test_unreadable_entries_raise_clear_errors(fields, error, text) -> None:
    with pytest.raises(error, match=text):
        decode(fields)
