"""Canonical URLs, HTML sanitising, HTML to text and UTC dates (ingestor.normalise)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urljoin

import nh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor import normalise
from ingestor.normalise import (
    _origin,
    _plain_absolute_path,
    canonical_url,
    html_sanitizer,
    html_to_text,
    normalise_text,
    sanitize_html,
    to_utc,
)


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("http://example.com/a", None, "http://example.com/a"),
        ("HTTP://Example.COM/Path", None, "http://example.com/Path"),
        ("http://example.com:80/a", None, "http://example.com/a"),
        ("https://example.com:443/a", None, "https://example.com/a"),
        ("https://example.com:8443/a", None, "https://example.com:8443/a"),
        ("http://example.com", None, "http://example.com/"),
        ("http://example.com/a#section-2", None, "http://example.com/a"),
        ("http://e.com/a?utm_source=rss&utm_medium=feed", None, "http://e.com/a"),
        ("http://e.com/a?id=7&UTM_Campaign=x&page=2", None, "http://e.com/a?id=7&page=2"),
        ("http://e.com/a?fbclid=1&b=2&gclid=3&a=1", None, "http://e.com/a?b=2&a=1"),
        ("http://e.com/?mc_cid=1&mc_eid=2&igshid=3&ref_src=4", None, "http://e.com/"),
        ("http://e.com/?_hsenc=1&_hsmi=2&yclid=3&msclkid=4&q=x", None, "http://e.com/?q=x"),
        ("http://e.com/?ref=home", None, "http://e.com/?ref=home"),
        ("/news/1?utm_source=x#top", "https://Site.org/feed.xml", "https://site.org/news/1"),
        ("../b", "http://e.com/x/y/feed", "http://e.com/x/b"),
        ("//cdn.e.com/a", "https://e.com/feed", "https://cdn.e.com/a"),
        ("  http://e.com/a  ", None, "http://e.com/a"),
        ("http://[2001:DB8::1]:8080/a", None, "http://[2001:db8::1]:8080/a"),
        ("javascript:alert(1)", None, None),
        ("mailto:a@example.com", None, None),
        ("tag:example.com,2006:1", None, None),
        ("urn:uuid:1234", None, None),
        ("ftp://e.com/a", None, None),
        ("", None, None),
        ("relative/only", None, None),
        ("http://[::1", None, None),
        ("http://e.com:notaport/", None, None),
    ],
)
def test_canonical_url(url: str, base: str | None, expected: str | None) -> None:
    assert canonical_url(url, base) == expected


@pytest.mark.parametrize(
    ("html", "absent", "present"),
    [
        ("<p>hi<script>alert(1)</script></p>", ["script", "alert"], ["<p>hi</p>"]),
        ('<img src="x.png" onerror="alert(1)">', ["onerror", "alert"], ["<img"]),
        ('<a href="javascript:alert(1)">x</a>', ["javascript", "alert"], [">x</a>"]),
        ('<p onclick="steal()">t</p>', ["onclick", "steal"], ["<p>t</p>"]),
        ('<iframe src="http://evil.example/"></iframe>ok', ["iframe", "evil"], ["ok"]),
        ("<style>p{color:red}</style><p>t</p>", ["style", "color"], ["<p>t</p>"]),
        ('<p style="position:fixed">t</p>', ["style", "fixed"], ["<p>t</p>"]),
        ("<object data=x></object><embed src=y>t", ["object", "embed"], ["t"]),
        ('<a href="/rel">x</a>', ['href="/rel"'], ['href="http://e.com/rel"']),
        ('<img src="pic.jpg" alt="A">', ['src="pic.jpg"'], ['src="http://e.com/news/pic.jpg"']),
        ("<h2>T</h2><ul><li>a</li></ul><table><tr><td>1</td></tr></table>", [], ["<h2>", "<li>"]),
    ],
)
def test_sanitize_html(html: str, absent: list[str], present: list[str]) -> None:
    clean = sanitize_html(html, "http://e.com/news/")
    for fragment in absent:
        assert fragment not in clean
    for fragment in present:
        assert fragment in clean


_HTML_PIECES = st.sampled_from(
    [
        "<p>", "</p>", "<a href='/a/b?c=1'>", "<a href=\"rel/x\" onclick='x()'>", "</a>",
        "<img src=\"/i.jpg\" alt=\"A\" width=\"9\">", "<img src='../up.png'>",
        "<script>alert(1)</script>", "<b>", "</b>", "<!-- c -->", "<q cite='//h.example/q'>",
        "<a href='javascript:x'>", "<a href='mailto:a@b.example'>", "<blockquote cite=' /s '>",
        "text ", "&amp; ", "é ", "<br>", "<iframe src=/f></iframe>", "<a href='/a/../b'>",
    ]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    html=st.lists(_HTML_PIECES, max_size=12).map("".join),
    base=st.sampled_from([None, "https://news.example.com/2025/01/story.html", "feed.xml"]),
)
def test_html_sanitizer_equals_nh3_clean_per_call(html: str, base: str | None) -> None:
    """The per-feed cleaner gives exactly what a one-off ``nh3.clean`` with the policy gives."""
    expected = nh3.clean(
        html,
        tags=set(normalise.ALLOWED_TAGS),
        clean_content_tags=set(normalise._DROP_WITH_CONTENT),
        attributes={k: set(v) for k, v in normalise.ALLOWED_ATTRIBUTES.items()},
        attribute_filter=normalise._absolutiser(base),
        url_schemes=set(normalise.URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()
    sanitize = html_sanitizer(base)
    assert sanitize(html) == expected
    assert sanitize(html) == expected  # a cleaner is reusable
    assert sanitize_html(html, base) == expected


def test_sanitize_html_without_base_keeps_relative_links() -> None:
    assert 'href="/rel"' in sanitize_html('<a href="/rel">x</a>', None)
    assert sanitize_html("   ", None) == ""


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<div>a<br>b<br/>c</div>", "a\nb\nc"),
        ("Tom &amp; Jerry &lt;3 &eacute;t&#233; &#x41;", "Tom & Jerry <3 été A"),
        ("  lots \n\t of   space  ", "lots of space"),
        ("<p>x<script>var a = 1;</script><style>p{}</style>y</p>", "xy"),
        ("<h1>Head</h1>body <b>bold</b> <i>it</i>", "Head\n\nbody bold it"),
        ("<ul><li>a</li><li>b</li></ul>", "a\n\nb"),
        ("unclosed <p>tags <b>everywhere", "unclosed\n\ntags everywhere"),
        ("", ""),
        ("a\x00b\x07c", "a b c"),
        ("a\ue000b\ue001c", "a b c"),  # our private-use markers, taken from the input
        ("<P>a</P ><Section>b<BR>c</section>", "a\n\nb\nc"),
        ("<pre-x>a</pre-x><p:x>b</p:x><thead>c</thead><dlx>d", "a\n\nb\n\nc\n\nd"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_html_to_text_is_fast_on_a_large_document() -> None:
    html = "<p>Phnom Penh &amp; Vientiane <b>defence</b> talks.</p>" * 20_000  # ~1 MB
    start = time.perf_counter()
    text = html_to_text(html)
    assert text.count("\n\n") == 19_999
    assert time.perf_counter() - start < 5  # generous: a sanity bound, not a benchmark


def test_normalise_text_keeps_paragraphs() -> None:
    assert normalise_text("a  b\r\n c\n\n\n  d ") == "a b\nc\n\nd"


# --- fast paths of html_to_text, checked against the straightforward versions -------------

_PARA, _LINE = normalise._PARA, normalise._LINE


def _layout_reference(marked: str) -> str:
    paragraphs = []
    for para in marked.split(_PARA):
        lines = (" ".join(line.split()) for line in para.split(_LINE))
        text = "\n".join(line for line in lines if line)
        if text:
            paragraphs.append(text)
    return "\n\n".join(paragraphs)


@settings(max_examples=2000, deadline=None)
@given(
    st.text(alphabet=["a", "é", " ", "\n", "\t", "\x1c", "\x85", "\xa0", "\u3000", _PARA, _LINE])
)
def test_layout_equals_the_reference(marked: str) -> None:
    assert normalise._layout(marked) == _layout_reference(marked)


_FLAT_BLOCK = re.compile(
    rf"</?(?:{'|'.join(sorted(normalise._BLOCK_TAGS))})\b{normalise._ATTRS}>", re.IGNORECASE
)
_TAG_SHAPED = st.tuples(
    st.sampled_from(["<", "</", "< ", "x"]),
    st.sampled_from(
        [*sorted(normalise._BLOCK_TAGS), "THEAD", "Br", "span", "pre-x", "p:x", "dlx", "hr2"]
    )
    # "ſ" and the Kelvin sign match "s" and "k" when case is ignored
    | st.sampled_from(["\u017fection", "\u212aey"]),
    st.sampled_from(["", " a='>'", ' b="x"', "-1", ":y", " '", "/"]),
    st.sampled_from([">", "/>", ""]),
).map("".join)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_TAG_SHAPED | st.sampled_from(["text", " ", "é"])).map("".join))
def test_grouped_block_names_match_like_the_flat_alternation(html: str) -> None:
    assert normalise._BLOCK.sub("|", html) == _FLAT_BLOCK.sub("|", html)


ICT = timezone(timedelta(hours=7))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (
            time.struct_time((2024, 1, 2, 3, 4, 5, 1, 2, 0)),
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        ),
        (datetime(2024, 1, 2, 10, 0, tzinfo=ICT), datetime(2024, 1, 2, 3, 0, tzinfo=UTC)),
        (datetime(2024, 1, 2, 3, 0), datetime(2024, 1, 2, 3, 0, tzinfo=UTC)),
        ("2024-01-02T10:00:00+07:00", datetime(2024, 1, 2, 3, 0, tzinfo=UTC)),
        ("2024-01-02T03:00:00Z", datetime(2024, 1, 2, 3, 0, tzinfo=UTC)),
        ("2024-01-02T03:00:00.1234567Z", datetime(2024, 1, 2, 3, 0, 0, 123456, tzinfo=UTC)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        ("Tue, 02 Jan 2024 10:00:00 +0700", datetime(2024, 1, 2, 3, 0, tzinfo=UTC)),
        ("Tue, 02 Jan 2024 03:00:00 GMT", datetime(2024, 1, 2, 3, 0, tzinfo=UTC)),
        ("not a date", None),
        ("2024-13-45T99:00:00Z", None),
        ("", None),
    ],
)
def test_to_utc(value: object, expected: datetime | None) -> None:
    result = to_utc(value)
    assert result == expected
    if result is not None:
        assert result.tzinfo is UTC


# --- the urljoin shortcut of sanitize_html ---------------------------------------------------

_BASES = [
    "https://news.example.com/2025/01/story.html",
    "http://User:pw@Example.COM:8080/a/b/?q=1#f",
    "https://例え.jp/feed/",
    "HTTPS://EXAMPLE.ORG",
]


@settings(max_examples=1000, deadline=None)
@given(
    base=st.sampled_from(_BASES),
    value=st.text(alphabet="/.?#;%:@=&a Z9\\\t\n~é", max_size=14).map(lambda v: "/" + v),
)
def test_plain_absolute_paths_join_like_urljoin(base: str, value: str) -> None:
    origin = _origin(base)
    assert origin is not None
    if _plain_absolute_path(value):
        assert origin + value == urljoin(base, value)


@pytest.mark.parametrize(
    "value",
    [
        "/a/../b",
        "/./x",
        "//evil.example/x",
        "/a?",
        "/a#",
        "/a?#b",
        "/a b",
        "/a\\b",
        "/.well",
        "/;",
        "/a;b",
    ],
)
def test_urljoin_shortcut_refuses_what_urljoin_rewrites(value: str) -> None:
    assert not _plain_absolute_path(value)


def test_sanitize_html_makes_links_absolute_either_way() -> None:
    html = '<a href="/x/y?z=1#t">a</a><img src="/a/../b.jpg"><a href="rel/p">r</a>'
    out = sanitize_html(html, "https://h.example/dir/page")
    assert 'href="https://h.example/x/y?z=1#t"' in out
    assert 'src="https://h.example/b.jpg"' in out
    assert 'href="https://h.example/dir/rel/p"' in out


@given(st.text(alphabet=st.characters(codec="utf-8")) | st.text(st.characters(max_codepoint=127)))
def test_blanking_controls_equals_the_regex(text: str) -> None:
    from ingestor.normalise import _CONTROL_OR_MARKER, _blank_controls

    assert _blank_controls(text) == _CONTROL_OR_MARKER.sub(" ", text)
    assert _blank_controls(text + "\ue000\x07") == _CONTROL_OR_MARKER.sub(" ", text + "\ue000\x07")
