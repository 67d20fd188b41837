"""``/v1/feeds/export.atom``: the filtered items as Atom that feedparser reads."""

from __future__ import annotations

import feedparser

from tests.api.conftest import make_item, make_labels


async def test_atom_export_parses_and_pages(client, world):
    for n in range(1, 4):
        await world.add(
            make_item(n, title=f"Border <talks> & {n}", text="Patrols \x01 resume"),
            make_labels("border_security", countries=("laos",)),
        )
    await world.add(make_item(9), make_labels("terrorism"))
    resp = await client.get("/v1/feeds/export.atom?topic=border_security&limit=2")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(resp.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.version == "atom10"
    assert [e.title for e in parsed.entries] == ["Border <talks> & 3", "Border <talks> & 2"]
    entry = parsed.entries[0]
    assert entry.link == "https://example.org/3"
    assert {t.term for t in entry.tags} == {"border_security", "laos"}
    nxt = next(link.href for link in parsed.feed.links if link.rel == "next")
    page2 = feedparser.parse((await client.get(nxt)).content)
    assert [e.title for e in page2.entries] == ["Border <talks> & 1"]
    assert page2.feed.id == parsed.feed.id
