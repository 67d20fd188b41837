"""List pages assembled from stored JSON (api/listing.py) equal what ``ItemOut`` writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

from api import listing
from api.schemas import ItemOut, ItemPage
from core import keys
from core.models import Item, StoredItem
from core.store import ItemQuery
from tests.api.conftest import make_item, make_labels


def _slow_page(stored: list[StoredItem], next_cursor: str | None) -> dict[str, object]:
    page = ItemPage(items=[ItemOut.of(s) for s in stored], next_cursor=next_cursor)
    return page.model_dump(mode="json")


async def test_page_equals_the_models_json(client, world):
    await world.add(make_item(1), make_labels("border_security", relevant=True, score=0.75))
    odd = Item(
        id=f"{2:016x}",
        feed_id="f2",
        title="Phnom Penh “quotes” \\ back\u2028slash ☃ ព្រះរាជាណាចក្រ",
        summary="tab\there\nnewline </script>",
        url=None,
        outlet=None,
        language="km",
        published=datetime(2024, 3, 1, 0, 2, 0, 123456, tzinfo=UTC),
    )
    await world.add(odd)  # not classified: labels and classified_at are null
    await world.add(make_item(3), make_labels("disaster_relief", countries=("laos",)))
    resp = await client.get("/v1/items?limit=2")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    stored = await world.store.get_many([make_item(3).id, odd.id])
    assert body == _slow_page(stored, body["next_cursor"])
    assert body["next_cursor"] is not None
    ItemPage.model_validate(body)
    rest = (await client.get(f"/v1/items?limit=2&cursor={body['next_cursor']}")).json()
    assert rest == _slow_page(await world.store.get_many([make_item(1).id]), None)


async def test_item_stored_without_a_card_is_rendered_whole(client, world):
    await world.add(make_item(1), make_labels("border_security"))
    await world.add(make_item(2))
    await world.redis.hdel(keys.item_key(make_item(1).id), "card")  # as stored before cards
    body = (await client.get("/v1/items")).json()
    stored = await world.store.get_many([make_item(2).id, make_item(1).id])
    assert body == _slow_page(stored, None)


async def test_store_cards_follow_updates(world):
    item = make_item(1, title="first title")
    await world.add(item)
    changed = item.model_copy(update={"title": "second title"})
    await world.store.upsert(changed, now=datetime(2024, 6, 2, tzinfo=UTC))
    page = await world.store.query_cards(ItemQuery())
    assert [c.item_id for c in page.cards] == [item.id]
    assert '"title":"second title"' in (page.cards[0].card or "")


def test_rfc3339_matches_pydantic():
    as_json = TypeAdapter(datetime).dump_json
    when = datetime(2024, 3, 1, 1, 2, 3, 4500, tzinfo=UTC)
    for value in (when, when.replace(microsecond=0), when + timedelta(days=400)):
        assert f'"{listing.rfc3339(value.isoformat())}"'.encode() == as_json(value)
    with pytest.raises(ValueError, match="not a UTC time"):
        listing.rfc3339("2024-03-01T00:00:00+07:00")
