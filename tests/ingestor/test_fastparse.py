"""The lxml fast path (ingestor.fastparse) against the feedparser path: for every document
the fast path accepts, ``parse_feed(fast=True)`` equals ``parse_feed(fast=False)`` field by
field; anything outside its subset is refused (None) and feedparser reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.polling import make_feed
from ingestor import parser
from ingestor.fastparse import parse_rss
from ingestor.parser import FeedParseError, ParsedFeed, parse_feed

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
URL = "https://news.example.com/feed.xml"
XML = {"content-type": "application/rss+xml; charset=utf-8"}
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def both(body: bytes, headers: dict[str, str]) -> tuple[ParsedFeed | str, ParsedFeed | str]:
    out: list[ParsedFeed | str] = []
    for fast in (False, True):
        try:
            out.append(parse_feed(body, headers, feed_id="f", feed_url=URL, now=NOW, fast=fast))
        except FeedParseError as e:
            out.append(f"FeedParseError: {e}")
    return out[0], out[1]


def rss(items: str, channel: str = "<title>T</title>", ns: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"{ns}><channel>{channel}'
        f"{items}</channel></rss>"
    ).encode()


NS = (
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:atom="http://www.w3.org/2005/Atom"'
    ' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'
)

ACCEPTED = {
    "bench feed": make_feed(7, items=5),
    "plain": rss("<item><guid>a</guid><title>x</title><link>/a?utm_source=x&amp;b=1</link></item>"),
    "guid is the link": rss("<item><guid>https://e.com/1</guid><title>t</title></item>"),
    "guid not a permalink": rss('<item><guid isPermaLink="false">k-1</guid></item>'),
    "link before guid": rss(
        "<item><link>https://e.com/l</link><guid>https://e.com/g</guid></item>"
    ),
    "html-looking title": rss(
        "<item><guid>a</guid><title>A &amp;amp; B &lt;b&gt;x&lt;/b&gt;</title></item>"
    ),
    "content before description": rss(
        "<item><guid>a</guid><content:encoded><![CDATA[<p>body</p>]]></content:encoded>"
        "<description>sum</description></item>",
        ns=NS,
    ),
    "content only": rss(
        "<item><guid>a</guid><content:encoded>&lt;p&gt;only&lt;/p&gt;</content:encoded></item>",
        ns=NS,
    ),
    "authors with e-mail": rss(
        "<item><guid>a</guid><author>desk@e.com (News Desk)</author>"
        "<dc:creator>Sok Chea</dc:creator><dc:creator></dc:creator></item>",
        ns=NS,
    ),
    "e-mail only": rss("<item><guid>a</guid><author>desk@e.com</author></item>"),
    "categories": rss(
        '<item><guid>a</guid><category domain="d"/><category domain="d">A</category>'
        "<category>B</category><category>A</category></item>"
    ),
    "dates": rss(
        "<item><guid>a</guid><pubDate>Wed, 29 May 2024 10:00:00 +0700</pubDate>"
        "<dc:date>2024-05-30T00:00:00Z</dc:date></item>"
        "<item><guid>b</guid><pubDate>not a date</pubDate></item>"
        "<item><guid>c</guid><pubDate>Wed, 29 May 2030 10:00:00 +0700</pubDate></item>",
        ns=NS,
    ),
    "channel metadata": rss(
        "<item><guid>a</guid></item>",
        channel=(
            "<title>Feed &lt;i&gt;x&lt;/i&gt;</title><link>https://E.com/?a=1&amp;b=2</link>"
            "<language>km</language><ttl>30</ttl><sy:updatePeriod>hourly</sy:updatePeriod>"
            '<sy:updateFrequency>2</sy:updateFrequency><atom:link rel="self" href="/f"/>'
            "<image><url>/i.png</url><title>img</title><link>/</link></image>"
            "<generator>wp</generator><!-- a comment -->"
        ),
        ns=NS,
    ),
    "bad ttl": rss("", channel="<title>T</title><ttl>soon</ttl>"),
    "mojibake repaired": rss("<item><guid>a</guid><title>cafÃ©</title></item>"),
    "cp1252 code points": rss("<item><guid>a</guid><title>quote&#x93;d&#x94;</title></item>"),
    "ASCII beside repaired text": rss(
        "<item><guid> a </guid><title>plain</title><description>cafÃ© &#x93;q&#x94;</description>"
        "<category> B </category></item>"
    ),
    "no guid, no link": rss("<item><title>dropped</title></item><item><guid>k</guid></item>"),
    "ignored item elements": rss(
        '<item><guid>a</guid><comments>/c</comments><enclosure url="/x.mp3" length="1" '
        'type="audio/mpeg"/><source url="https://s.example/">S</source></item>'
    ),
}

REFUSED = {
    "atom": b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>',
    "rss 0.91": b'<rss version="0.91"><channel><title>t</title></channel></rss>',
    "rdf": b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>',
    "doctype": b'<?xml version="1.0"?><!DOCTYPE rss><rss version="2.0"><channel/></rss>',
    "entity": rss("<item><guid>a</guid></item>").replace(
        b"<rss", b"<!DOCTYPE rss [<!ENTITY a 'b'>]><rss"
    ),
    "latin-1 declared": rss("").replace(b"UTF-8", b"ISO-8859-1"),
    "not UTF-8": rss("<item><guid>café</guid></item>").replace("é".encode(), b"\xe9"),
    "xml:lang": rss('<item xml:lang="km"><guid>a</guid></item>'),
    "xml:base": rss("<item><guid>a</guid></item>").replace(
        b"<channel>", b'<channel xml:base="/x/">'
    ),
    "unknown item element": rss("<item><guid>a</guid><media:title>x</media:title></item>").replace(
        b'version="2.0"', b'version="2.0" xmlns:media="http://search.yahoo.com/mrss/"'
    ),
    "markup in a title": rss("<item><guid>a</guid><title>a <b>b</b></title></item>"),
    "two titles": rss("<item><guid>a</guid><title>1</title><title>2</title></item>"),
    "two descriptions": rss(
        "<item><guid>a</guid><description>1</description><description>2</description></item>"
    ),
    "atom alternate link": rss("", channel='<atom:link href="/x"/>', ns=NS),
    "ill-formed": rss("<item><guid>a & b</guid></item>"),
    "default namespace": rss("").replace(b'version="2.0"', b'version="2.0" xmlns="urn:x"'),
}  # fmt: skip


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_documents_parse_the_same_both_ways(body: bytes) -> None:
    assert parse_rss(body, XML) is not None
    slow, fast = both(body, XML)
    assert isinstance(fast, ParsedFeed)
    assert fast == slow


@pytest.mark.parametrize("body", REFUSED.values(), ids=REFUSED.keys())
def test_documents_outside_the_subset_are_refused(body: bytes) -> None:
    assert parse_rss(body, XML) is None
    slow, fast = both(body, XML)
    assert fast == slow


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ({}, True),
        ({"content-type": "application/xml"}, True),
        ({"content-type": "application/rss+xml; charset=utf-8"}, True),
        ({"content-type": "application/rss+xml; charset=UTF-8"}, True),  # no mojibake repair
        ({"content-type": "text/xml; charset=utf-8"}, True),
        ({"content-type": "text/xml"}, False),  # us-ascii by RFC 3023
        ({"content-type": "text/html; charset=utf-8"}, False),  # bozo: not an XML type
        ({"content-type": "application/xml; charset=iso-8859-1"}, False),
        ({"content-type": "application/xml", "content-language": "km"}, False),
        ({"etag": '"x"'}, False),  # feedparser would assume ISO-8859-1 (never sent so)
    ],
)
def test_headers(headers: dict[str, str], accepted: bool) -> None:
    body = rss("<item><guid>a</guid><title>cafÃ© ສະບາຍດີ</title></item>")
    assert (parse_rss(body, headers) is not None) is accepted
    if "etag" not in headers:
        slow, fast = both(body, headers)
        assert fast == slow


def test_the_fast_path_is_used_by_parse_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("feedparser called")

    monkeypatch.setattr(parser, "_feedparser", refuse)
    feed = parse_feed(make_feed(1, items=3), XML, feed_id="f", feed_url=URL, now=NOW)
    assert len(feed.items) == 3


# --- the shared corpus ------------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_corpus_fast_path_equals_feedparser_path() -> None:
    # same headers and URLs as the parser's corpus test (a module that skips without corpus)
    from tests.ingestor.test_corpus import _files, _folders, _headers, _url_for

    accepted, problems = 0, []
    for folder in _folders():
        for path in _files(folder):
            body = path.read_bytes()
            headers = _headers(body)
            lowered = {k.lower(): v for k, v in headers.items()}
            if lowered:  # as parse_feed hands them on
                lowered.setdefault("content-type", "application/xml")
            if parse_rss(body, lowered) is None:
                continue
            accepted += 1
            slow, fast = (
                parse_feed(body, headers, feed_id="c", feed_url=_url_for(path), now=NOW, fast=f)
                for f in (False, True)
            )
            if fast != slow:
                problems.append(str(path.relative_to(CORPUS)))
    assert accepted > 100  # the fast path is exercised, not refused everywhere
    assert not problems, problems
