"""The feed list: intervals, ids, FeedDef validation, and loading feeds files (shipped and bad)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ingestor.feeds import (
    DEFAULT_INTERVAL_S,
    MIN_INTERVAL_S,
    FeedDef,
    FeedsFileError,
    feed_id_for,
    format_interval,
    load_feeds_file,
    parse_feeds,
    parse_interval,
)

SHIPPED = Path(__file__).resolve().parents[2] / "feeds.yaml"


# -- intervals ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given_", "seconds"),
    [
        ("15m", 900),
        ("1h", 3600),
        ("90s", 90),
        ("2h30m", 9000),
        ("1d", 86_400),
        (" 1H 5M ", 3900),
        ("900", 900),  # bare digits are seconds
        (900, 900),
    ],
)
def test_parse_interval(given_, seconds):
    assert parse_interval(given_) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "15 minutes", "1m1h", "-5m", 0, -60, True, 1.5])
def test_parse_interval_rejects_with_a_clear_error(bad):
    with pytest.raises(ValueError, match="interval"):
        parse_interval(bad)


@given(st.integers(min_value=1, max_value=10**7))
def test_format_interval_round_trips(seconds):
    assert parse_interval(format_interval(seconds)) == seconds


# -- ids ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "name", "expected"),
    [
        ("https://www.khmertimeskh.com/feed/", "Khmer Times", "khmer-times"),
        ("https://www.khmertimeskh.com/feed/", None, "khmertimeskh-com-feed"),
        ("https://laotiantimes.com/feed/", "  ", "laotiantimes-com-feed"),
        ("https://x.org/a", "Lao People's Army — Việt", "lao-people-s-army-viet"),
    ],
)
def test_feed_id_for(url, name, expected):
    assert feed_id_for(url, name) == expected


def test_search_feeds_differing_only_by_query_get_distinct_short_ids():
    base = "https://news.google.com/rss/search?q={}&hl=en-US&gl=US&ceid=US:en"
    a = feed_id_for(base.format("Cambodia+Laos+military"))
    b = feed_id_for(base.format("Cambodia+Laos+border"))
    assert a != b
    assert len(a) <= 64 and len(b) <= 64
    assert a == feed_id_for(base.format("Cambodia+Laos+military"))  # stable


# -- FeedDef --------------------------------------------------------------------------------
def test_feeddef_defaults_and_derivations():
    feed = FeedDef.model_validate({"url": "https://laotiantimes.com/feed/"})
    assert feed.id == "laotiantimes-com-feed"
    assert feed.name == "laotiantimes.com"
    assert feed.interval_s == DEFAULT_INTERVAL_S
    assert feed.fetch_full_text is False
    assert feed.enabled is True


def test_feeddef_accepts_interval_syntax():
    feed = FeedDef.model_validate({"url": "https://a.org/f", "name": "A", "interval": "2h30m"})
    assert feed.interval_s == 9000


@pytest.mark.parametrize(
    ("entry", "field", "needle"),
    [
        ({"url": "ftp://a.org/f", "name": "A"}, "url", "http or https"),
        ({"url": "https:///nohost", "name": "A"}, "url", "no host"),
        ({"url": "https://a.org/f", "name": "A", "id": "Bad Id"}, "id", "lower-case"),
        ({"url": "https://a.org/f", "name": "A", "interval": "30s"}, "interval_s", "'a'"),
        ({"url": "https://a.org/f", "name": "A", "interval_s": "soon"}, "interval_s", "soon"),
        ({"url": "https://a.org/f", "name": "A", "colour": "red"}, "colour", "Extra"),
    ],
)
def test_feeddef_rejects(entry, field, needle):
    with pytest.raises(ValidationError) as caught:
        FeedDef.model_validate(entry)
    err = caught.value.errors()[0]
    assert err["loc"] == (field,)
    assert needle in err["msg"]


def test_interval_floor_names_the_feed():
    with pytest.raises(ValidationError, match=r"feed 'khmer-times': interval 59s is below"):
        FeedDef(url="https://a.org/f", name="Khmer Times", interval_s=MIN_INTERVAL_S - 1)
    assert FeedDef(url="https://a.org/f", name="A", interval_s=MIN_INTERVAL_S).interval_s == 60


# -- the shipped file -----------------------------------------------------------------------
def test_shipped_feeds_file_loads_and_every_feed_validates():
    feeds = load_feeds_file(SHIPPED)
    assert len(feeds) >= 10
    assert len({f.id for f in feeds}) == len(feeds)
    assert len({f.url for f in feeds}) == len(feeds)
    for feed in feeds:
        assert FeedDef.model_validate(feed.model_dump()) == feed
        assert 15 * 60 <= feed.interval_s <= 60 * 60, feed.id
        host = urlsplit(feed.url).hostname or ""
        if host.endswith(("news.google.com", "bing.com")):
            assert not feed.fetch_full_text, f"{feed.id} links to redirectors"


def test_shipped_feeds_cover_the_named_outlets():
    hosts = {urlsplit(f.url).hostname for f in load_feeds_file(SHIPPED)}
    for host in ("www.khmertimeskh.com", "laotiantimes.com", "news.google.com", "www.bing.com"):
        assert host in hosts


def test_shipped_file_says_it_was_not_verified():
    head = SHIPPED.read_text(encoding="utf-8")[:800]
    assert "NOT VERIFIED" in head
    assert "backs off" in head


# -- bad files ------------------------------------------------------------------------------
def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("feeds: [\n", ["not valid YAML"]),
        ("- a\n- b\n", ["'feeds:' list"]),
        ("feeds: {}\n", ["'feeds:' list"]),
        ("feeds: []\nfeed: []\n", ["unknown top-level key(s): feed"]),
        ("feeds:\n  - just a string\n", ["feed #0", "expected a mapping"]),
        (
            "feeds:\n  - name: Good\n    url: https://a.org/f\n"
            "  - name: Bad Scheme\n    url: gopher://b.org/f\n",
            ["feed #1 (Bad Scheme)", "url:", "http or https"],
        ),
        (
            "feeds:\n  - name: Too Fast\n    url: https://a.org/f\n    interval: 10s\n",
            ["feed #0 (Too Fast)", "interval_s:", "'too-fast'", "floor"],
        ),
        (
            "feeds:\n  - id: missing-url\n    name: X\n",
            ["feed #0 (missing-url)", "url:", "Field required"],
        ),
        (
            "feeds:\n  - name: A\n    url: https://a.org/1\n  - name: A\n    url: https://a.org/2\n",
            ["feed #1 (a)", "id: duplicate id", "feed #0"],
        ),
        (
            "feeds:\n  - name: A\n    url: https://a.org/f\n  - name: B\n    url: https://A.ORG/f\n",
            ["feed #1 (b)", "url: duplicate url", "feed #0"],
        ),
    ],
)
def test_bad_files_name_file_feed_and_field(tmp_path, text, needles):
    path = _write(tmp_path, text)
    with pytest.raises(FeedsFileError) as caught:
        load_feeds_file(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    for needle in needles:
        assert needle in message, (needle, message)


def test_every_problem_is_listed(tmp_path):
    path = _write(
        tmp_path,
        "feeds:\n  - name: A\n    url: ftp://a.org/f\n  - name: B\n    url: https://b/\n"
        "    interval: 1s\n",
    )
    with pytest.raises(FeedsFileError) as caught:
        load_feeds_file(path)
    assert len(caught.value.problems) == 2
    assert caught.value.path == str(path)


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FeedsFileError, match=r"nope\.yaml: cannot read"):
        load_feeds_file(missing)


def test_feeds_file_error_is_a_value_error():
    with pytest.raises(ValueError, match="<feeds>"):
        parse_feeds(None)
