"""The item store against a real Redis: idempotent writes, indexes, filters, cursors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import keys
from core.errors import BadCursor
from core.models import Item, Labels
from core.store import ItemQuery, ItemStore

T0 = datetime(2024, 3, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _item(n: int, *, feed: str = "f1", minutes: int | None = None) -> Item:
    return Item(
        id=f"{n:016x}",
        feed_id=feed,
        title=f"item {n}",
        published=T0 + timedelta(minutes=n if minutes is None else minutes),
    )


def _labels(*topics: str, relevant: bool = False, countries: tuple[str, ...] = ()) -> Labels:
    return Labels(topics=sorted(topics), countries=sorted(countries), relevant=relevant, score=0.5)


async def test_add_is_idempotent(r):
    store = ItemStore(r)
    assert await store.add(_item(1), now=NOW) is True
    assert await store.add(_item(1), now=NOW) is False
    assert await store.count() == 1
    assert (await store.stats())["items_ingested"] == 1
    got = await store.get(_item(1).id)
    assert got is not None and got.item == _item(1) and got.labels is None


async def test_set_labels_applies_each_event_once_and_moves_indexes(r):
    store = ItemStore(r)
    item = _item(1)
    await store.add(item, now=NOW)
    assert await store.set_labels(item.id, _labels("demining"), event_id="e1", now=NOW)
    assert not await store.set_labels(item.id, _labels("demining"), event_id="e1", now=NOW)
    assert (await store.stats())["items_classified"] == 1
    assert [s.item.id for s in (await store.query(ItemQuery(topic="demining"))).items] == [item.id]
    # a new classification (rules changed) moves the item between indexes
    assert await store.set_labels(item.id, _labels("terrorism"), event_id="e2", now=NOW)
    assert (await store.query(ItemQuery(topic="demining"))).items == []
    assert len((await store.query(ItemQuery(topic="terrorism"))).items) == 1
    assert await r.zcard(keys.index_key("topic", "demining")) == 0


async def test_set_labels_on_unknown_item_changes_nothing(r):
    store = ItemStore(r)
    assert not await store.set_labels("00000000000000ff", _labels("x"), event_id="e", now=NOW)
    assert await r.exists(keys.item_key("00000000000000ff")) == 0


async def test_filters_combine_and_results_are_newest_first(r):
    store = ItemStore(r)
    for n in range(20):
        await store.add(_item(n, feed="a" if n % 2 else "b"), now=NOW)
        topics = ("border_security",) if n % 3 == 0 else ("demining",)
        rel = n % 4 == 0
        await store.set_labels(
            _item(n).id,
            _labels(*topics, relevant=rel, countries=("laos",)),
            event_id=f"e{n}",
            now=NOW,
        )
    page = await store.query(ItemQuery(topic="border_security", feed="b"))
    assert [s.item.title for s in page.items] == ["item 18", "item 12", "item 6", "item 0"]
    page = await store.query(ItemQuery(relevant=True, topic="border_security"))
    assert [s.item.title for s in page.items] == ["item 12", "item 0"]
    page = await store.query(ItemQuery(relevant=False, country="laos", limit=100))
    assert len(page.items) == 15 and all(s.labels and not s.labels.relevant for s in page.items)
    window = ItemQuery(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=8))
    assert [s.item.title for s in (await store.query(window)).items] == [
        "item 8",
        "item 7",
        "item 6",
        "item 5",
    ]


async def test_cursor_pages_cover_everything_once_even_with_equal_times(r):
    store = ItemStore(r)
    for n in range(53):
        await store.add(_item(n, minutes=n // 10), now=NOW)  # ten items share each minute
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.query(ItemQuery(limit=7, cursor=cursor))
        seen += [s.item.id for s in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 53 and len(set(seen)) == 53
    times = [(await store.get(i)).item.published for i in seen]
    assert times == sorted(times, reverse=True)


async def test_cursor_stays_correct_while_new_items_arrive(r):
    store = ItemStore(r)
    for n in range(10):
        await store.add(_item(n), now=NOW)
    first = await store.query(ItemQuery(limit=5))
    await store.add(_item(100), now=NOW)  # newer than everything: must not shift page 2
    second = await store.query(ItemQuery(limit=5, cursor=first.next_cursor))
    assert [s.item.title for s in second.items] == [f"item {n}" for n in (4, 3, 2, 1, 0)]
    assert second.next_cursor is None


@pytest.mark.parametrize("cursor", ["nope", "123:abc", "000000000000001:" + "x" * 200, "(+"])
async def test_bad_cursor_is_refused(r, cursor):
    with pytest.raises(BadCursor):
        await ItemStore(r).query(ItemQuery(cursor=cursor))


def _feed_item(feed: str, *, guid: str | None, url: str | None, title: str = "t", minutes: int = 0):
    from core.models import item_id_for

    return Item(
        id=item_id_for(guid=guid, url=url),
        feed_id=feed,
        guid=guid,
        url=url,
        title=title,
        published=T0 + timedelta(minutes=minutes),
    )


async def test_same_guid_or_url_from_two_feeds_is_stored_once(r):
    from core.store import Upsert

    store = ItemStore(r)
    a = _feed_item("a", guid="g-1", url="https://x.test/1")
    b = _feed_item("b", guid="g-2", url="https://x.test/1")  # other guid, same canonical URL
    c = _feed_item("c", guid="g-1", url=None)  # same guid, no link
    assert await store.upsert(a, now=NOW) is Upsert.NEW
    assert await store.upsert(b, now=NOW) is Upsert.SAME
    assert await store.upsert(c, now=NOW) is Upsert.SAME
    assert await store.count() == 1
    for feed in ("a", "b", "c"):  # but it is listed under every feed that carried it
        assert [s.item.id for s in (await store.query(ItemQuery(feed=feed))).items] == [a.id]


async def test_changed_item_is_updated_in_place_and_reindexed(r):
    from core.store import Upsert

    store = ItemStore(r)
    first = _feed_item("a", guid="g", url="https://x.test/1", title="old", minutes=1)
    await store.upsert(first, now=NOW)
    await store.set_labels(first.id, _labels("demining"), event_id="e1", now=NOW)
    await store.add(_item(500, minutes=5), now=NOW)
    seen: list[Item] = []
    changed = _feed_item("a", guid="g", url="https://x.test/1", title="new", minutes=10)
    result = await store.upsert(changed, now=NOW, on_update=lambda pipe, it: seen.append(it))
    assert result is Upsert.UPDATED and seen[0].id == first.id
    got = await store.get(first.id)
    assert got.item.title == "new" and got.labels is not None  # labels kept until reclassified
    # moved in time in every index it is in
    assert (await store.query(ItemQuery(limit=1))).items[0].item.id == first.id
    assert [s.item.id for s in (await store.query(ItemQuery(topic="demining"))).items] == [first.id]
    assert await r.zcard(keys.INDEX_ALL) == 2
    again = await store.upsert(changed, now=NOW)
    assert again is Upsert.SAME


def test_words_fold_case_and_accents_and_skip_stop_words():
    from core.store import words

    assert words("The Border of the MEKONG: the border's Pátrol") == ["border", "mekong", "patrol"]


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=127)) | st.text())
def test_words_of_ascii_text_take_a_shortcut_to_the_same_words(text):
    import unicodedata

    from core.store import STOPWORDS, words

    folded = unicodedata.normalize("NFKD", text.casefold())  # the general path, whole
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    seen = [m.group(0) for m in re.finditer(r"[^\W_]{2,40}", plain)]
    expected = list(dict.fromkeys(w for w in seen if w not in STOPWORDS))
    assert words(text) == expected


async def test_words_are_indexed_with_the_classification_once_per_content(r):
    store = ItemStore(r)
    item = _feed_item("a", guid="g", url="https://x.test/1", title="Mekong patrol", minutes=1)
    await store.upsert(item, now=NOW)
    assert (await store.query(ItemQuery(q=("patrol",)))).items == []  # not classified yet
    await store.set_labels(item.id, _labels("demining"), event_id="e1", now=NOW)
    found = await store.query(ItemQuery(q=("mekong", "patrol")))
    assert [s.item.id for s in found.items] == [item.id]
    word = keys.index_key("word", "patrol")
    member = (await r.zrange(word, 0, -1))[0]
    # Classifying the same content again indexes nothing again.
    await store.set_labels(item.id, _labels("terrorism"), event_id="e2", now=NOW)
    assert await r.zrange(word, 0, -1) == [member]
    idx = await r.hget(keys.item_key(item.id), "idx")
    assert idx.count(word) == 1
    # An update drops the old text's words (at once) and indexes the new text's with its
    # classification, at the new time.
    changed = _feed_item("a", guid="g", url="https://x.test/1", title="Flood relief", minutes=9)
    await store.upsert(changed, now=NOW)
    assert await r.zcard(word) == 0
    assert (await store.query(ItemQuery(q=("flood",)))).items == []
    await store.set_labels(item.id, _labels("disaster_relief"), event_id="e3", now=NOW)
    assert [s.item.id for s in (await store.query(ItemQuery(q=("flood",)))).items] == [item.id]
    assert (await store.query(ItemQuery(q=("patrol",)))).items == []
    assert await r.zrange(keys.index_key("word", "relief"), 0, -1) == [
        await r.hget(keys.item_key(item.id), "member")
    ]


# --- upsert_many ----------------------------------------------------------------------------


def _guided(n: int, guid: str, *, feed: str = "f1", title: str | None = None) -> Item:
    from core.models import item_id_for

    return Item(
        id=item_id_for(guid=guid),
        feed_id=feed,
        guid=guid,
        url=f"https://news.example.com/{n}",
        title=title or f"item {n}",
        published=T0 + timedelta(minutes=n),
    )


async def test_upsert_many_stores_new_items_and_publishes_each_once(r):
    from core.events import StreamEntry
    from core.store import Upsert

    store = ItemStore(r)
    items = [_guided(n, f"g{n}") for n in range(5)]

    def announce(item: Item) -> StreamEntry:  # asked of every candidate; written for new ones
        return StreamEntry("s", {"id": item.id}, 100)

    results = await store.upsert_many(items, now=NOW, on_new=announce)
    assert results == [Upsert.NEW] * 5
    assert [f["id"] for _, f in await r.xrange("s")] == [i.id for i in items]
    assert await store.count() == 5
    assert (await store.stats())["items_ingested"] == 5
    again = await store.upsert_many(items, now=NOW, on_new=announce)
    assert again == [Upsert.SAME] * 5
    assert await r.xlen("s") == 5


async def test_upsert_many_dedups_within_the_batch(r):
    from core.models import item_id_for
    from core.store import Upsert

    store = ItemStore(r)
    first, twin = _guided(1, "same-guid"), _guided(2, "same-guid", title="other title")
    by_url = Item(id=item_id_for(url=first.url), feed_id="f2", url=first.url, title="t",
                  published=T0)  # fmt: skip
    results = await store.upsert_many([first, twin, by_url], now=NOW)
    assert results[0] is Upsert.NEW
    # the twin comes from the same feed with other content: an update, as upsert would say
    assert results[1] is Upsert.UPDATED
    assert results[2] is Upsert.SAME
    assert await store.count() == 1


async def test_upsert_many_matches_upsert_item_by_item(r):
    from core.store import Upsert

    store = ItemStore(r)
    await store.upsert(_guided(1, "g1"), now=NOW)
    await store.upsert(_guided(2, "g2"), now=NOW)
    batch = [
        _guided(1, "g1"),  # unchanged
        _guided(2, "g2", title="changed"),  # updated
        _guided(3, "g3"),  # new
        _guided(1, "g1", feed="f2"),  # another feed's copy
    ]
    updates: list[str] = []
    results = await store.upsert_many(
        batch, now=NOW, on_update=lambda item: updates.append(item.title)
    )
    assert results == [Upsert.SAME, Upsert.UPDATED, Upsert.NEW, Upsert.SAME]
    assert updates == ["changed"]
    assert await store.count() == 3


async def test_upsert_many_counts_a_batch_whose_reply_was_lost_as_new_and_publishes_once(
    r, monkeypatch
):
    """The batch script ran but its reply never came (a timeout, a dropped connection): the
    retry finds the items stored under this call's token and reports them new, and nothing
    is stored, counted or published twice."""
    from core.bus import Bus
    from core.events import ItemIngested, decode, item_event_entry
    from core.store import Upsert

    store = ItemStore(r)
    bus = Bus(r)
    items = [_guided(n, f"g{n}") for n in range(3)]
    real = store._store_new
    calls: list[list[int]] = []

    async def reply_lost_once(*args: object) -> list[int]:
        if not calls:
            calls.append(await real(*args))  # it ran; the caller never heard
        codes = await real(*args)
        calls.append(codes)
        return codes

    monkeypatch.setattr(store, "_store_new", reply_lost_once)
    results = await store.upsert_many(
        items, now=NOW, on_new=lambda item: bus.entry("s", *item_event_entry(ItemIngested, NOW))
    )
    assert calls == [[0, 0, 0], [2, 2, 2]]
    assert results == [Upsert.NEW] * 3
    assert (await store.stats())["items_ingested"] == 3
    entries = await r.xrange("s")
    assert [decode(fields).item for _, fields in entries] == items  # type: ignore[attr-defined]


async def test_upsert_many_event_carries_the_item_as_encode_writes_it(r):
    from core.bus import Bus
    from core.events import ItemIngested, encode, item_event_entry

    store = ItemStore(r)
    bus = Bus(r, maxlen=1000)
    item = _guided(1, "g1")
    ids: list[str] = []

    def announce(stored: Item):
        fields, carries = item_event_entry(ItemIngested, NOW)
        ids.append(fields["id"])
        return bus.entry("s", fields, carries)

    await store.upsert_many([item], now=NOW, on_new=announce)
    [(_, fields)] = await r.xrange("s")
    assert fields == encode(ItemIngested(item=item, occurred_at=NOW, event_id=ids[0]))


async def test_upsert_many_list_entry_is_the_one_compose_assembles(r):
    from core.store import _COMPOSE, LISTED

    store = ItemStore(r)
    items = [_guided(n, f"g{n}") for n in range(3)]
    await store.upsert_many(items, now=NOW)
    written = await r.hgetall(LISTED)
    assert set(written) == {i.id for i in items}
    for item in items:
        await r.eval(_COMPOSE, 2, keys.item_key(item.id), LISTED, item.id)
    assert await r.hgetall(LISTED) == written


async def test_upsert_many_splits_a_large_batch(r, monkeypatch):
    from core import store as store_module
    from core.store import Upsert

    monkeypatch.setattr(store_module, "BATCH_MAX", 2)
    store = ItemStore(r)
    items = [_guided(n, f"g{n}") for n in range(5)]
    results = await store.upsert_many([*items, _guided(0, "g0")], now=NOW)
    assert results == [Upsert.NEW] * 5 + [Upsert.SAME]
    assert await store.count() == 5
    assert (await store.stats())["items_ingested"] == 5


async def test_upsert_many_of_nothing(r):
    assert await ItemStore(r).upsert_many([], now=NOW) == []
