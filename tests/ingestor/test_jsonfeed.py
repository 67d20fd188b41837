"""JSON Feed 1.0/1.1 reading, field by field, wrong types included (ingestor.jsonfeed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ingestor.jsonfeed import JsonFeedError, looks_like_json, parse_json_feed

V10 = {
    "version": "https://jsonfeed.org/version/1",
    "title": "Old feed",
    "home_page_url": "https://example.org/",
    "author": {"name": "Feed Author"},
    "items": [
        {
            "id": 42,
            "url": "https://example.org/42",
            "title": "Hello",
            "content_html": "<p>Hi</p>",
            "date_published": "2024-01-02T10:00:00+07:00",
            "author": {"name": "Item Author"},
            "tags": ["a", "b", "a"],
        },
        {"id": "2", "external_url": "https://other.org/x", "content_text": "txt"},
    ],
}
V11 = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "New feed",
    "language": "km",
    "authors": [{"name": "A1"}, {"name": "A2"}],
    "items": [
        {
            "id": "x",
            "summary": "sum",
            "date_modified": "2024-02-01T00:00:00Z",
            "language": "lo",
            "authors": [{"name": "B"}],
        },
        {"id": "y", "content_text": "no authors: inherits the feed's"},
    ],
}


def _parse(doc: object) -> object:
    return parse_json_feed(json.dumps(doc).encode())


def test_json_feed_1_0() -> None:
    feed = parse_json_feed(json.dumps(V10).encode())
    assert (feed.version, feed.title, feed.home_page_url) == ("1", "Old feed", V10["home_page_url"])
    assert feed.authors == ["Feed Author"]
    first, second = feed.items
    assert first.id == "42"  # a number in the wild: str() it
    assert first.authors == ["Item Author"]
    assert first.tags == ["a", "b"]
    assert first.date_published == datetime(2024, 1, 2, 3, 0, tzinfo=UTC)
    assert first.content_html == "<p>Hi</p>"
    assert second.external_url == "https://other.org/x"
    assert second.authors == ["Feed Author"]
    assert feed.warnings == []


def test_json_feed_1_1() -> None:
    feed = parse_json_feed(json.dumps(V11).encode())
    assert (feed.version, feed.language, feed.authors) == ("1.1", "km", ["A1", "A2"])
    first, second = feed.items
    assert (first.summary, first.language, first.authors) == ("sum", "lo", ["B"])
    assert first.date_modified == datetime(2024, 2, 1, tzinfo=UTC)
    assert second.authors == ["A1", "A2"]


def test_wrong_types_are_skipped_with_warnings() -> None:
    # Modelled on lemon24/reader's tests/data/invalid.json.
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": ["not a string"],
        "home_page_url": {"not": "a string"},
        "authors": {"not": "a list"},
        "language": {"bad": "language"},
        "items": [
            {
                "id": "2",
                "title": 1000,
                "content_text": ["x"],
                "content_html": True,
                "summary": True,
                "date_published": "not a date",
                "date_modified": {},
                "url": 1.2,
                "language": True,
                "authors": "not a list",
                "tags": "nope",
            },
            {"id": 3.1415, "title": "float id", "author": "not a dict"},
            {"id": True, "authors": [{"name": []}, "x", {"name": "Jane"}]},
            "not an object",
        ],
    }
    feed = parse_json_feed(json.dumps(doc).encode())
    assert (feed.title, feed.home_page_url, feed.language, feed.authors) == (None, None, None, [])
    assert len(feed.items) == 3
    bad, floaty, boolean = feed.items
    assert bad.id == "2"
    assert (bad.title, bad.content_text, bad.content_html, bad.summary, bad.url) == (None,) * 5
    assert (bad.date_published, bad.date_modified, bad.language) == (None, None, None)
    assert (bad.authors, bad.tags) == ([], [])
    assert floaty.id == "3.1415"
    assert boolean.id is None
    assert boolean.authors == ["Jane"]
    text = "\n".join(feed.warnings)
    for needle in ["title is a list", "date_published", "item 3 is a str", "authors is a str"]:
        assert needle in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b'{"verion": "1.0"', "invalid JSON"),
        (b"[1, 2]", "top level is a list"),
        (b'{"version": "1.0", "items": []}', "version is '1.0'"),
        (b'{"items": []}', "version is None"),
        (b"\xff\xfe\xfa", "not valid UTF-8"),
    ],
)
def test_not_a_json_feed(body: bytes, message: str) -> None:
    with pytest.raises(JsonFeedError, match="not a JSON Feed") as info:
        parse_json_feed(body)
    assert message in str(info.value)


def test_unknown_version_is_read_with_a_warning() -> None:
    feed = parse_json_feed(b'{"version": "https://jsonfeed.org/version/1234", "items": []}')
    assert feed.version == "1234"
    assert feed.items == []
    assert any("unknown JSON Feed version" in w for w in feed.warnings)


def test_http_version_prefix_is_tolerated() -> None:
    feed = parse_json_feed(b'{"version": "http://jsonfeed.org/version/1", "items": []}')
    assert feed.version == "1"
    assert any("http://" in w for w in feed.warnings)


def test_bom_and_charset_fallback() -> None:
    body = json.dumps({**V11, "title": "Café"}, ensure_ascii=False).encode()
    assert parse_json_feed(b"\xef\xbb\xbf" + body).title == "Café"
    latin = json.dumps({**V11, "title": "Café"}, ensure_ascii=False).encode("latin-1")
    assert parse_json_feed(latin, "iso-8859-1").title == "Café"


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b'  {"a":1}', True), (b'\xef\xbb\xbf\n{"a":1}', True), (b"<rss/>", False), (b"", False)],
)
def test_looks_like_json(body: bytes, expected: bool) -> None:
    assert looks_like_json(body) is expected
