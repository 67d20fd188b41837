"""``/v1/items``: every filter, cursors under concurrent inserts, detail with evidence."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.conftest import make_item, make_labels


async def _ids(client, query: str = "") -> list[str]:
    resp = await client.get(f"/v1/items{query}")
    assert resp.status_code == 200, resp.text
    return [i["id"] for i in resp.json()["items"]]


async def test_filters_combine_newest_first(client, world):
    await world.add(
        make_item(1, text="Border patrol near Champasak"), make_labels("border_security", score=0.3)
    )
    await world.add(
        make_item(2, feed="f2", text="The border talks"),
        make_labels("border_security", relevant=True, score=0.9, countries=("laos",)),
    )
    await world.add(make_item(3, text="Flood relief"), make_labels("disaster_relief", score=0.6))
    await world.add(make_item(4, text="unclassified border"))
    one, two, three, four = (make_item(n).id for n in (1, 2, 3, 4))
    assert await _ids(client) == [four, three, two, one]
    assert await _ids(client, "?topic=border_security") == [two, one]
    assert await _ids(client, "?country=laos") == [two]
    assert await _ids(client, "?feed=f2") == [two]
    assert await _ids(client, "?relevant=true") == [two]
    assert await _ids(client, "?relevant=false&topic=border_security") == [one]
    assert await _ids(client, "?min_score=0.5") == [three, two]
    # Words are indexed with the classification: the unclassified item 4 is not found yet.
    assert await _ids(client, "?q=border") == [two, one]
    assert await _ids(client, "?q=BORDER+patrol") == [one]
    assert await _ids(client, "?q=bördér&topic=border_security") == [two, one]
    assert await _ids(client, "?q=nowhere") == []
    assert await _ids(client, "?q=the+border") == [two, one]  # stop words are ignored
    assert await _ids(client, "?since=2024-03-01T00:02:00Z&until=2024-03-01T00:03:00Z") == [
        three,
        two,
    ]


@pytest.mark.parametrize("query", ["", "?topic=border_security", "?topic=border_security&feed=f1"])
async def test_list_pages_carry_evidence_only_when_asked(client, world, query):
    await world.add(make_item(1), make_labels("border_security"))
    sep = "&" if query else "?"
    brief = (await client.get(f"/v1/items{query}")).json()["items"][0]["labels"]
    whole = (await client.get(f"/v1/items{query}{sep}evidence=true")).json()["items"][0]["labels"]
    assert "matches" not in brief
    assert whole["matches"][0]["rule"] == "border_security.r"
    assert {k: v for k, v in whole.items() if k != "matches"} == brief
    detail = (await client.get(f"/v1/items/{make_item(1).id}")).json()["labels"]
    assert detail == whole


async def test_story_filter_and_detail_with_evidence_and_story(client, world):
    for n in (1, 2, 3):
        await world.add(make_item(n), make_labels("border_security"))
    await world.store.set_story(make_item(1).id, "s1")
    await world.store.set_story(make_item(3).id, "s1")
    assert await _ids(client, "?story=s1") == [make_item(3).id, make_item(1).id]
    resp = await client.get(f"/v1/items/{make_item(1).id}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["labels"]["matches"][0]["rule"] == "border_security.r"
    assert body["story_id"] == "s1"
    assert [i["id"] for i in body["story_items"]] == [make_item(3).id]
    missing = await client.get("/v1/items/00000000000000ff")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=abc", "limit"),
        ("?topic=Bad Topic", "topic"),
        ("?min_score=2", "min_score"),
        ("?since=yesterday", "since"),
        ("?since=2024-01-01T00:00:00", "since"),
        ("?since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z", "since"),
        ("?q=%21%21", "q"),
        ("?q=the+of+AND", "q"),  # stop words only
        ("?q=" + "+".join(f"w{i}" for i in range(9)), "q"),
        ("?relevant=maybe", "relevant"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(client, query, field):
    resp = await client.get(f"/v1/items{query}")
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in resp.json()["errors"]]


async def test_bad_cursor_is_400(client):
    resp = await client.get("/v1/items?cursor=nope")
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["field"] == "cursor"


async def test_pagination_is_exact_while_items_arrive(client, world):
    for n in range(1, 101):
        await world.add(make_item(n), make_labels("border_security"))
    seen: list[str] = []
    cursor = None

    async def insert_newer() -> None:
        for n in range(1000, 1060):  # newer than everything: they must not enter the walk
            await world.add(make_item(n), make_labels("border_security"))

    writer = asyncio.create_task(insert_newer())
    while True:
        query = "?topic=border_security&limit=7" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(f"/v1/items{query}")
        page = resp.json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        await asyncio.sleep(0)  # let the writer interleave (not a wait for work)
        if cursor is None:
            break
    await writer
    old = [i for i in seen if int(i, 16) < 1000]
    assert old == [make_item(n).id for n in range(100, 0, -1)]
    assert len(seen) == len(set(seen))
