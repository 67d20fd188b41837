"""List pages as JSON assembled from stored strings: ``GET /v1/items`` without parsing items.

A list page is most of the API's traffic. Parsing every item whole (its text included) into
models and serialising it again cost ~40 µs an item; the store keeps each item's list-view
fields as JSON (its ``card``) and its labels as JSON (whole, and ``brief``: without the
evidence, as list pages show them unless asked), so a page is string work. The output is
the same JSON value ``ItemOut`` serialises to (``tests/api/test_listing.py`` checks that);
an item stored before cards (or brief labels) existed is rendered through ``ItemOut``.
Usually Redis has already assembled the items (core/store.py's ``_LISTED``, the same splice
as ``card_out`` in Lua: it costs far less there), and only the page's frame is added here.

Owns: the page's frame, and the assembly when Redis declined it. Must not: touch Redis (the
caller reads the cards).
"""

from __future__ import annotations

import json

from api.schemas import ItemOut
from core.models import StoredItem
from core.store import Card, CardPage

_UTC = "+00:00"


def rfc3339(stored: str) -> str:
    """A stored ``isoformat()`` UTC time as pydantic writes it (``…Z``)."""
    if not stored.endswith(_UTC):
        raise ValueError(f"not a UTC time as the store writes it: {stored!r}")
    return stored[: -len(_UTC)] + "Z"


def card_out(card: Card, *, evidence: bool = False) -> str | None:
    """One ``ItemOut`` as JSON (its labels brief unless ``evidence``), or None when the card
    or the brief labels are missing (use ``item_out``)."""
    if card.card is None or not card.card.endswith("}"):
        return None
    labels = card.labels if evidence else card.brief
    if labels is None and card.labels is not None:  # classified before brief labels existed
        return None
    classified = f'"{rfc3339(card.classified_at)}"' if card.classified_at else "null"
    return (
        f'{card.card[:-1]},"ingested_at":"{rfc3339(card.ingested_at)}",'
        f'"classified_at":{classified},"labels":{labels or "null"}}}'
    )


def item_out(stored: StoredItem, *, evidence: bool = False) -> str:
    return ItemOut.of(stored, evidence=evidence).model_dump_json()


def page_json(cards: list[str], next_cursor: str | None) -> str:
    """An ``ItemPage`` from its items' JSON."""
    return f'{{"items":[{",".join(cards)}],"next_cursor":{json.dumps(next_cursor)}}}'


def needs_whole(page: CardPage, *, evidence: bool = False) -> list[str]:
    """The ids of the page's items ``card_out`` cannot render: read them whole for ``render``."""
    return [c.item_id for c in page.cards if card_out(c, evidence=evidence) is None]


def render(page: CardPage, fallback: dict[str, StoredItem], *, evidence: bool = False) -> str:
    """The page (its items' labels brief unless ``evidence``); ``fallback`` holds the items
    ``card_out`` cannot render, read whole (``needs_whole``)."""
    if page.joined is not None:  # assembled by Redis (core/store.py's _LISTED)
        return page_json([page.joined] if page.joined else [], page.next_cursor)
    out: list[str] = []
    for card in page.cards:
        fast = card_out(card, evidence=evidence)
        if fast is not None:
            out.append(fast)
        elif card.item_id in fallback:
            out.append(item_out(fallback[card.item_id], evidence=evidence))
    return page_json(out, page.next_cursor)
