"""``/v1/stories``: stories newest first with their sources, and one story whole."""

from __future__ import annotations

from tests.api.conftest import make_item, make_labels


async def test_stories_list_and_detail(client, world):
    for n, feed in ((1, "a"), (2, "b"), (3, "a"), (4, "c")):
        await world.add(make_item(n, feed=feed), make_labels("border_security"))
    await world.store.set_story(make_item(1).id, "old")
    await world.store.set_story(make_item(2).id, "old")
    await world.store.set_story(make_item(3).id, "mid")
    await world.store.set_story(make_item(4).id, "new")
    first = (await client.get("/v1/stories?limit=2")).json()
    assert [s["id"] for s in first["stories"]] == ["new", "mid"]
    rest = (await client.get(f"/v1/stories?limit=2&cursor={first['next_cursor']}")).json()
    assert [s["id"] for s in rest["stories"]] == ["old"] and rest["next_cursor"] is None
    old = rest["stories"][0]
    assert old["items"] == 2
    assert {s["feed_id"] for s in old["sources"]} == {"a", "b"}
    detail = (await client.get("/v1/stories/old")).json()
    assert [i["id"] for i in detail["item_list"]] == [make_item(2).id, make_item(1).id]
    assert (await client.get("/v1/stories/none")).status_code == 404
    assert (await client.get("/v1/stories?cursor=zz")).status_code == 400
