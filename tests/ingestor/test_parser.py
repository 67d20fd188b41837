"""Feed documents into Items (ingestor.parser): formats, feed metadata, normalisation,
encodings, hostile XML, and the contract "a ParsedFeed or FeedParseError, nothing else"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.models import item_id_for
from ingestor.parser import FeedParseError, ParsedFeed, parse_feed

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
FEED_URL = "https://news.example.com/feeds/main.xml"


def parse(body: bytes | str, headers: dict[str, str] | None = None) -> ParsedFeed:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return parse_feed(data, headers or {}, feed_id="f1", feed_url=FEED_URL, now=NOW)


RSS_091 = """<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
  "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>Old &amp; Gold</title><link>http://old.example.com/</link>
<language>en-us</language>
<item><title>First</title><link>http://old.example.com/1</link><description>One</description></item>
</channel></rss>"""

RSS_20 = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
<channel>
  <title>Khmer  Defence
    Wire</title><link>https://News.Example.com/</link><language>km</language>
  <ttl>30</ttl><sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>
  <item>
    <title>Joint   exercise &amp;amp; training</title>
    <link>/2024/05/joint?utm_source=rss&amp;id=9#comments</link>
    <guid isPermaLink="false">kdw-1001</guid>
    <description>&lt;p&gt;Short &lt;b&gt;summary&lt;/b&gt;&lt;/p&gt;</description>
    <content:encoded><![CDATA[<p>Long body <a href="/more">more</a></p>
      <script>alert(1)</script><img src="a.jpg" onerror="alert(2)">
      <a href="javascript:alert(3)">x</a><iframe src="http://evil.example/"></iframe>]]>
    </content:encoded>
    <dc:creator>Sok Chea</dc:creator><category>Defence</category><category>Laos</category>
    <pubDate>Wed, 29 May 2024 10:00:00 +0700</pubDate>
  </item>
  <item>
    <title>No guid</title><link>https://news.example.com/2</link>
  </item>
  <item><description>Neither guid nor link: dropped</description></item>
</channel></rss>"""

RDF = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
  xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="http://rdf.example.com/"><title>RDF feed</title>
<link>http://rdf.example.com/</link><dc:language>lo</dc:language></channel>
<item rdf:about="http://rdf.example.com/a"><title>RDF item</title>
<link>http://rdf.example.com/a</link><dc:date>2024-05-01T08:00:00Z</dc:date></item>
</rdf:RDF>"""

ATOM_03 = """<?xml version="1.0" encoding="utf-8"?>
<feed version="0.3" xmlns="http://purl.org/atom/ns#">
<title>Atom 0.3</title><link rel="alternate" type="text/html" href="http://a03.example.com/"/>
<entry><title>Old atom</title><link rel="alternate" type="text/html" href="http://a03.example.com/1"/>
<id>tag:a03.example.com,2004:1</id><issued>2004-01-01T00:00:00Z</issued>
<modified>2004-01-02T00:00:00Z</modified></entry></feed>"""

ATOM_10 = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
<title type="html">Atom &lt;i&gt;one&lt;/i&gt;</title><link href="https://atom.example.com/"/>
<id>urn:feed</id><updated>2024-05-01T00:00:00Z</updated>
<entry xml:lang="km"><title>Entry one</title><id>urn:uuid:1</id>
<link rel="alternate" href="https://atom.example.com/1"/>
<published>2024-05-01T09:00:00+07:00</published><updated>2024-05-02T00:00:00Z</updated>
<author><name>Author One</name></author><author><name>Author Two</name></author>
<category term="border"/>
<summary>Sum</summary>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Body</p></div></content>
</entry>
<entry><id>urn:uuid:2</id><content type="text">Untitled body text that becomes the title</content>
<updated>2030-01-01T00:00:00Z</updated></entry>
</feed>"""


def test_rss_091() -> None:
    feed = parse(RSS_091)
    assert (feed.title, feed.link, feed.language) == (
        "Old & Gold",
        "http://old.example.com/",
        "en-us",
    )
    (item,) = feed.items
    assert (item.title, item.url, item.guid, item.summary) == (
        "First",
        "http://old.example.com/1",
        None,
        "One",
    )
    assert item.id == item_id_for(url="http://old.example.com/1")
    assert item.published == NOW  # no date at all: now


def test_rss_20() -> None:
    feed = parse(RSS_20)
    assert feed.title == "Khmer Defence Wire"
    assert feed.link == "https://news.example.com/"
    assert feed.language == "km"
    assert feed.ttl_seconds == 30 * 60
    assert feed.update_period_seconds == 3600 // 4
    assert feed.skipped == 1
    assert any("neither a guid nor a usable link" in w for w in feed.warnings)
    first, second = feed.items
    assert first.id == item_id_for(guid="kdw-1001")
    assert first.guid == "kdw-1001"
    assert first.url == "https://news.example.com/2024/05/joint?id=9"
    # RSS titles are HTML in practice (feedparser types them text/html): both levels decoded.
    assert first.title == "Joint exercise & training"
    assert first.summary == "Short summary"
    assert first.text == "Long body more\n\nx"
    assert first.authors == ["Sok Chea"]
    assert first.tags == ["Defence", "Laos"]
    assert first.published == datetime(2024, 5, 29, 3, 0, tzinfo=UTC)
    assert (first.language, first.outlet, first.feed_id) == ("km", "Khmer Defence Wire", "f1")
    assert 'href="https://news.example.com/more"' in first.html
    for bad in ("<script", "alert", "onerror", "javascript:", "<iframe", "evil.example"):
        assert bad not in first.html
    assert first.updated is None  # feedparser's updated→published fallback is not used
    assert second.guid is None
    assert second.id == item_id_for(url="https://news.example.com/2")


def test_rdf() -> None:
    feed = parse(RDF)
    assert (feed.title, feed.language) == ("RDF feed", "lo")
    (item,) = feed.items
    assert item.title == "RDF item"
    assert item.published == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_atom_03() -> None:
    feed = parse(ATOM_03)
    (item,) = feed.items
    assert (item.guid, item.url) == ("tag:a03.example.com,2004:1", "http://a03.example.com/1")
    assert item.published == datetime(2004, 1, 1, tzinfo=UTC)


def test_atom_10() -> None:
    feed = parse(ATOM_10)
    assert (feed.title, feed.language) == ("Atom one", "en")
    first, second = feed.items
    assert first.guid == "urn:uuid:1"
    assert first.url == "https://atom.example.com/1"
    assert first.authors == ["Author One", "Author Two"]
    assert first.tags == ["border"]
    assert first.published == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
    assert first.updated == datetime(2024, 5, 2, tzinfo=UTC)
    assert (first.summary, first.text, first.html) == ("Sum", "Body", "<p>Body</p>")
    assert first.language == "km"
    assert second.url is None
    assert second.title == "Untitled body text that becomes the title"
    assert second.html == ""  # type="text": no HTML to keep
    assert second.published == NOW  # 2030 is more than a day ahead: clamped
    assert any("in the future" in w for w in feed.warnings)
    assert second.language == "en"


def test_title_falls_back_to_text_then_untitled() -> None:
    long_text = "word " * 40
    body = f"""<rss version="2.0"><channel><title>T</title>
    <item><guid>a</guid><description>{long_text}</description></item>
    <item><guid>b</guid></item></channel></rss>"""
    first, second = parse(body).items
    assert first.title == long_text[:80].strip()
    assert second.title == "(untitled)"


def test_summary_is_capped() -> None:
    body = f"""<rss version="2.0"><channel><title>T</title>
    <item><guid>a</guid><description>{"abc " * 600}</description></item></channel></rss>"""
    (item,) = parse(body).items
    assert len(item.summary) <= 1000
    assert item.summary.endswith("…")
    assert len(item.text) > 2000


@pytest.mark.parametrize(
    ("extra", "ttl", "period"),
    [
        ("<ttl>60</ttl>", 3600, None),
        ("<ttl>soon</ttl>", None, None),
        ("<sy:updatePeriod>daily</sy:updatePeriod>", None, 86_400),
        (
            "<sy:updatePeriod>weekly</sy:updatePeriod><sy:updateFrequency>7</sy:updateFrequency>",
            None,
            86_400,
        ),
        ("<sy:updatePeriod> Monthly </sy:updatePeriod>", None, 2_592_000),
        ("<sy:updatePeriod>yearly</sy:updatePeriod>", None, 31_536_000),
        ("<sy:updateFrequency>2</sy:updateFrequency>", None, 43_200),
        ("<sy:updatePeriod>fortnightly</sy:updatePeriod>", None, None),
        (
            "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>0</sy:updateFrequency>",
            None,
            3600,
        ),
    ],
)
def test_ttl_and_update_period(extra: str, ttl: int | None, period: int | None) -> None:
    body = f"""<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
    <channel><title>T</title>{extra}</channel></rss>"""
    feed = parse(body)
    assert (feed.ttl_seconds, feed.update_period_seconds) == (ttl, period)


def test_json_feed_1_1() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON news",
        "home_page_url": "https://json.example.com/",
        "language": "en",
        "authors": [{"name": "Desk"}],
        "items": [
            {
                "id": 7,
                "url": "/7?utm_medium=x",
                "title": "Seven",
                "content_html": '<p>Body</p><script>x()</script><a href="/rel">r</a>',
                "summary": "Short",
                "date_published": "2024-05-01T10:00:00+07:00",
                "tags": ["t"],
                "language": "lo",
            },
            {"external_url": "https://elsewhere.example.com/x", "content_text": "plain text"},
            {"title": "no id, no url"},
        ],
    }
    feed = parse(json.dumps(doc), {"Content-Type": "application/feed+json"})
    assert (feed.title, feed.link, feed.language) == (
        "JSON news",
        "https://json.example.com/",
        "en",
    )
    assert feed.skipped == 1
    first, second = feed.items
    assert (first.guid, first.id) == ("7", item_id_for(guid="7"))
    assert first.url == "https://news.example.com/7"
    assert (first.title, first.summary, first.text) == ("Seven", "Short", "Body\n\nr")
    assert "<script" not in first.html
    assert 'href="https://news.example.com/rel"' in first.html
    assert (first.authors, first.tags, first.language) == (["Desk"], ["t"], "lo")
    assert first.published == datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    assert second.url == "https://elsewhere.example.com/x"
    assert (second.title, second.text, second.html, second.language) == (
        "plain text",
        "plain text",
        "",
        "en",
    )


def test_json_feed_1_0_with_bom_and_author() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1",
        "title": "v1",
        "author": {"name": "Old Style"},
        "items": [{"id": "1", "content_text": "x"}],
    }
    feed = parse(b"\xef\xbb\xbf  " + json.dumps(doc).encode())
    assert feed.items[0].authors == ["Old Style"]


def test_windows_1251_decoded_by_the_content_type_charset() -> None:
    title = "Новости обороны"
    body = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
        f"<item><guid>1</guid><title>{title}</title></item></channel></rss>"
    ).encode("windows-1251")
    feed = parse(body, {"Content-Type": "application/rss+xml; charset=windows-1251"})
    assert feed.title == title
    assert feed.items[0].title == title


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-16"])
@pytest.mark.parametrize("prolog", ["<?xml version='1.0' encoding='utf-16'?>", ""])
def test_utf16_with_or_without_bom(codec: str, prolog: str) -> None:
    body = f"{prolog}<rss version='2.0'><channel><title>ກອງທັບ</title></channel></rss>"
    feed = parse(body.encode(codec))
    assert feed.title == "ກອງທັບ"


def test_charset_header_beats_the_declaration() -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>café</title></channel></rss>"
    ).encode("iso-8859-1")
    feed = parse(body, {"content-type": "application/xml; charset=iso-8859-1"})
    assert feed.title == "café"


def test_utf8_without_declaration_or_content_type() -> None:
    body = "<rss version='2.0'><channel><title>ສະບາຍດີ</title></channel></rss>".encode()
    assert parse(body, {"ETag": '"x"'}).title == "ສະບາຍດີ"


def test_content_location_is_the_base() -> None:
    body = "<rss version='2.0'><channel><item><link>/a</link></item></channel></rss>"
    feed = parse(body, {"Content-Location": "https://mirror.example.org/x/feed"})
    assert feed.items[0].url == "https://mirror.example.org/a"


def test_bozo_feed_is_ingested_with_a_warning() -> None:
    body = (
        "<rss version='2.0'><channel><title>T &nbsp; &copy</title>"
        "<item><guid>1</guid><title>bare & ampersand</title></item></channel></rss>"
    )
    feed = parse(body)
    assert len(feed.items) == 1
    assert feed.warnings


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty document"),
        (b" \r\n\t ", "empty document"),
        (b"\xef\xbb\xbf\n", "empty document"),
        (b"<!DOCTYPE html><html><head><title>x</title></head><body>hi</body></html>", "HTML page"),
        (b"<html><body><p>Document moved</p></body></html>", "HTML page"),
        (b"<?xml version='1.0'?><!-- c --><foo><bar/></foo>", "(root element <foo>)"),
        (b"<?xml version='1.0'?><opml version='2.0'><body/></opml>", "root element <opml>"),
        (b"just some text", "not a feed"),
        (b"\x1f\x8b\x08\x00\x00\x00", "gzip"),
        (b'{"version": "2", "items": []}', "not a JSON Feed"),
        (b"{broken json", "invalid JSON"),
    ],
)
def test_not_a_feed(body: bytes, message: str) -> None:
    with pytest.raises(FeedParseError) as info:
        parse(body)
    assert message in str(info.value)


def test_empty_but_valid_feed_has_no_items() -> None:
    feed = parse("<rss version='2.0'><channel><title>Quiet</title></channel></rss>")
    assert (feed.title, feed.items, feed.skipped) == ("Quiet", [], 0)


# --- hostile XML ----------------------------------------------------------------------------


def _billion_laughs() -> bytes:
    decls = ['<!ENTITY lol "lol">']
    for i in range(1, 10):
        ref = f"&lol{i - 1};" if i > 1 else "&lol;"
        decls.append(f'<!ENTITY lol{i} "{ref * 10}">')
    subset = "\n".join(decls)
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{subset}\n]>\n<rss version="2.0"><channel>'
        "<title>&lol9;</title><item><guid>1</guid><title>&lol9;</title>"
        "<description>&lol9;</description></item></channel></rss>"
    ).encode()


def _quadratic_blowup() -> bytes:
    big = "A" * 100_000
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "{big}">\n]>\n'
        '<rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>x</title>'
        f"<description>{'&a;' * 10_000}</description></item></channel></rss>"
    ).encode()


@pytest.mark.parametrize("body", [_billion_laughs(), _quadratic_blowup()], ids=["laughs", "quad"])
def test_entity_expansion_is_bounded(body: bytes) -> None:
    feed = parse(body)  # declarations are dropped with a warning, the feed is still read
    size = sum(len(i.title) + len(i.text) + len(i.summary) + len(i.html) for i in feed.items)
    assert size < 10 * len(body)
    assert any("entity" in w for w in feed.warnings)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "http://127.0.0.1:9/"])
@pytest.mark.parametrize("layout", ["same line", "multi line"])
def test_external_entities_are_not_resolved(target: str, layout: str) -> None:
    sep = "" if layout == "same line" else "\n  "
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [{sep}<!ENTITY xxe SYSTEM "{target}">{sep}]>\n'
        '<rss version="2.0"><channel><title>T &xxe;</title><item><guid>g</guid>'
        "<title>a &xxe;</title><description>b &xxe;</description>"
        "<link>http://e.com/&xxe;</link></item></channel></rss>"
    ).encode()
    try:
        feed = parse(body)
    except FeedParseError:
        return
    everything = repr(feed)
    assert "root:" not in everything  # the first line of /etc/passwd
    assert "127.0.0.1" not in everything
    assert any("xxe" in w for w in feed.warnings)


def test_parameter_entity_xxe_is_not_resolved() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY % ext SYSTEM "file:///etc/passwd">\n'
        b"%ext;\n]>\n<rss version='2.0'><channel><title>T</title><item><guid>g</guid>"
        b"</item></channel></rss>"
    )
    try:
        feed = parse(body)
    except FeedParseError:
        return
    assert "root:" not in repr(feed)


def test_a_body_that_is_a_path_is_not_opened() -> None:
    # feedparser.parse opens a bytes argument as a file name when it can: we give it a stream.
    with pytest.raises(FeedParseError):
        parse(b"/etc/passwd")


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bytes_give_a_feed_or_a_feed_parse_error(body: bytes) -> None:
    try:
        result = parse(body)
    except FeedParseError:
        return
    assert isinstance(result, ParsedFeed)


FEEDISH = st.lists(
    st.sampled_from(
        [
            "<rss version='2.0'>", "<channel>", "<item>", "</item>", "<title>", "</title>",
            "<link>", "</link>", "<guid>", "</guid>", "<description>", "</description>",
            "<feed xmlns='http://www.w3.org/2005/Atom'>", "<entry>", "<id>", "</entry>",
            "<![CDATA[", "]]>", "&amp;", "&nbsp;", "&#0;", "http://e.com/x", "<pubDate>",
            "Mon, 99 Jan 2024", "</pubDate>", "<script>", "\x00", "é", "{", '"version"',
            "<!DOCTYPE x [<!ENTITY a 'b'>]>", "&a;", "<?xml version='1.0'?>",
        ]
    ),
    max_size=40,
)  # fmt: skip


@given(FEEDISH)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_feed_shaped_noise_gives_a_feed_or_a_feed_parse_error(parts: list[str]) -> None:
    try:
        result = parse("".join(parts).encode("utf-8", "surrogatepass"))
    except FeedParseError:
        return
    assert isinstance(result, ParsedFeed)
    for item in result.items:
        assert item.published <= NOW + timedelta(days=1)
        assert item.title
