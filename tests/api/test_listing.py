"""List pages assembled from stored JSON (api/listing.py) equal what ``ItemOut`` writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

from api import listing
from api.schemas import ItemOut, ItemPage
from core import keys
from core.models import Item, StoredItem
from core.store import LISTED, ItemQuery
from tests.api.conftest import NOW, make_item, make_labels


def _slow_page(
    stored: list[StoredItem], next_cursor: str | None, *, evidence: bool = False
) -> dict[str, object]:
    items = [ItemOut.of(s, evidence=evidence) for s in stored]
    return ItemPage(items=items, next_cursor=next_cursor).model_dump(mode="json")


@pytest.mark.parametrize("evidence", [False, True])
async def test_page_equals_the_models_json(client, world, evidence):
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
    flag = f"&evidence={str(evidence).lower()}"
    resp = await client.get(f"/v1/items?limit=2{flag}")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    stored = await world.store.get_many([make_item(3).id, odd.id])
    assert body == _slow_page(stored, body["next_cursor"], evidence=evidence)
    assert ("matches" in body["items"][0]["labels"]) is evidence
    assert body["next_cursor"] is not None
    ItemPage.model_validate(body)
    rest = (await client.get(f"/v1/items?limit=2{flag}&cursor={body['next_cursor']}")).json()
    last = await world.store.get_many([make_item(1).id])
    assert rest == _slow_page(last, None, evidence=evidence)


@pytest.mark.parametrize("evidence", [False, True])
@pytest.mark.parametrize("query", ["?x=y", "?topic=border_security&country=laos"])
async def test_item_stored_without_a_card_is_rendered_whole(client, world, query, evidence):
    labels = make_labels("border_security", countries=("laos",))
    await world.add(make_item(1), labels)
    await world.add(make_item(2), labels)
    # As stored before cards (and list entries) existed: Python renders the page.
    await world.redis.hdel(keys.item_key(make_item(1).id), "card")
    await world.redis.hdel(LISTED, make_item(1).id)
    body = (await client.get(f"/v1/items{query}&evidence={str(evidence).lower()}")).json()
    stored = await world.store.get_many([make_item(2).id, make_item(1).id])
    assert body == _slow_page(stored, None, evidence=evidence)


@pytest.mark.parametrize("query", ["?x=y", "?topic=border_security&country=laos"])
async def test_item_classified_before_brief_labels_existed(client, world, query):
    """Its labels are stored whole only, and its list entry (in the old hash, which is
    never read) had its evidence: Python renders the page without; Redis, with."""
    labels = make_labels("border_security", countries=("laos",))
    await world.add(make_item(1), labels)
    await world.add(make_item(2), labels)
    await world.redis.hdel(keys.item_key(make_item(1).id), "brief")
    await world.redis.hdel(LISTED, make_item(1).id)
    await world.redis.hset(f"{keys.PREFIX}:listed", make_item(1).id, '{"stale":true}')
    stored = await world.store.get_many([make_item(2).id, make_item(1).id])
    body = (await client.get(f"/v1/items{query}")).json()
    assert body == _slow_page(stored, None)
    assert "matches" not in body["items"][1]["labels"]
    whole = (await client.get(f"/v1/items{query}&evidence=true")).json()
    assert whole == _slow_page(stored, None, evidence=True)
    cards = await world.store.query_cards(world_query(query[1:]), evidence=True)
    assert cards.joined is not None  # the whole labels are all Redis needs


@pytest.mark.parametrize("query", ["", "?topic=border_security&country=laos"])
async def test_item_stored_without_a_list_entry_is_assembled_on_read(client, world, query):
    labels = make_labels("border_security", countries=("laos",))
    await world.add(make_item(1), labels)
    await world.add(make_item(2))
    await world.store.set_labels(make_item(2).id, labels, event_id="e2", now=NOW)
    await world.redis.hdel(LISTED, make_item(1).id)  # stored before list entries
    body = (await client.get(f"/v1/items{query}")).json()
    stored = await world.store.get_many([make_item(2).id, make_item(1).id])
    assert body == _slow_page(stored, None)
    assert (await world.store.query_cards(world_query(query[1:] or "x=y"))).joined is not None


async def test_list_entries_follow_every_write(client, world):
    """The stored list entry is rebuilt by each write of its parts: add, update, labels."""
    item = make_item(1, title="first title")
    await world.add(item)
    await world.store.upsert(item.model_copy(update={"title": "second"}), now=NOW)
    await world.store.set_labels(item.id, make_labels("border_security"), event_id="a", now=NOW)
    later = NOW + timedelta(hours=1)
    await world.store.set_labels(item.id, make_labels("disaster_relief"), event_id="b", now=later)
    body = (await client.get("/v1/items")).json()
    assert body == _slow_page(await world.store.get_many([item.id]), None)
    assert body["items"][0]["title"] == "second"
    assert body["items"][0]["labels"]["topics"] == ["disaster_relief"]


async def test_store_cards_follow_updates(world):
    item = make_item(1, title="first title")
    await world.add(item)
    changed = item.model_copy(update={"title": "second title"})
    await world.store.upsert(changed, now=datetime(2024, 6, 2, tzinfo=UTC))
    page = await world.store.query_cards(ItemQuery())
    assert page.cards == []  # assembled by Redis
    assert '"title":"second title"' in (page.joined or "")
    assert '"title":"first title"' not in (page.joined or "")


@pytest.mark.parametrize("evidence", [False, True])
@pytest.mark.parametrize(
    "query",
    [
        "topic=border_security",  # one index: the page in one script
        "topic=border_security&country=laos",  # two indexes: ids first, then the rows
        "relevant=false",  # a filter the index does not decide
    ],
)
async def test_redis_assembled_pages_equal_the_models_json(client, world, query, evidence):
    for n in range(1, 6):
        labels = make_labels("border_security", countries=("laos",) if n % 2 else ("cambodia",))
        await world.add(make_item(n), labels)
    await world.add(make_item(9))  # not classified
    flag = "&evidence=true" if evidence else ""
    body = (await client.get(f"/v1/items?{query}&limit=2{flag}")).json()
    assert body["items"], "the query must match something for this test to mean anything"
    ids = [i["id"] for i in body["items"]]
    stored = await world.store.get_many(ids)
    assert body == _slow_page(stored, body["next_cursor"], evidence=evidence)
    page = await world.store.query_cards(world_query(query), evidence=evidence)
    assert page.joined is not None and page.cards == []


def world_query(query: str) -> ItemQuery:
    fields = dict(part.split("=") for part in query.split("&") if part)
    return ItemQuery(
        topic=fields.get("topic"),
        country=fields.get("country"),
        relevant=False if fields.get("relevant") == "false" else None,
        limit=2,
    )


@pytest.mark.parametrize("query", ["", "?topic=border_security&country=laos"])
async def test_item_deleted_is_left_out_though_still_indexed(client, world, query):
    for n in (1, 2, 3):
        await world.add(make_item(n), make_labels("border_security", countries=("laos",)))
    # Its hash and list entry gone, its index entries not: as a delete's first steps.
    await world.redis.delete(keys.item_key(make_item(2).id))
    await world.redis.hdel(LISTED, make_item(2).id)
    body = (await client.get(f"/v1/items{query}")).json()
    assert [i["id"] for i in body["items"]] == [make_item(3).id, make_item(1).id]


def test_rfc3339_matches_pydantic():
    as_json = TypeAdapter(datetime).dump_json
    when = datetime(2024, 3, 1, 1, 2, 3, 4500, tzinfo=UTC)
    for value in (when, when.replace(microsecond=0), when + timedelta(days=400)):
        assert f'"{listing.rfc3339(value.isoformat())}"'.encode() == as_json(value)
    with pytest.raises(ValueError, match="not a UTC time"):
        listing.rfc3339("2024-03-01T00:00:00+07:00")
