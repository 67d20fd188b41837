"""Feed documents (RSS 0.9x/1.0/2.0, RDF, Atom 0.3/1.0, JSON Feed 1.0/1.1) into Items.

Owns: deciding whether a body is a feed at all, handing XML to feedparser (bytes and
response headers only, so the Content-Type charset is honoured and feedparser never opens a
URL or a file), JSON to ``ingestor.jsonfeed``, defusing entity declarations before any XML
parser sees them, and turning each entry into a ``core.models.Item``: stable id, canonical
link, clean title/summary/text, sanitized HTML, UTC dates, language and outlet. A bad entry
is skipped with a warning; a recoverable (bozo) feed is ingested with a warning.

Must not: do I/O (no network, no files, no clock: ``now`` is an argument), let feedparser
sanitize (nh3 does it, far faster), decide whether an item is new, or raise anything but
``FeedParseError`` for a bad document.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urljoin

import feedparser

from core.errors import NewsmonError
from core.models import Item, item_id_for
from ingestor.fastparse import parse_rss
from ingestor.jsonfeed import JsonFeedError, looks_like_json, parse_json_feed
from ingestor.normalise import (
    canonical_url,
    html_sanitizer,
    html_to_text,
    normalise_text,
    one_line,
    to_utc,
)

SUMMARY_LIMIT: Final = 1000
TITLE_FROM_TEXT: Final = 80
UNTITLED: Final = "(untitled)"
FUTURE_TOLERANCE: Final = timedelta(days=1)
# Entity declarations may expand to at most this many characters in all (quadratic
# blowup: one 100 KB entity referenced 10,000 times is 1 GB; expat alone stops that only
# after 8 MiB of output, and feedparser's fallback parser not at all).
MAX_ENTITY_EXPANSION: Final = 1_000_000
# RSS Syndication module (http://web.resource.org/rss/1.0/modules/syndication/).
UPDATE_PERIODS: Final = {
    "hourly": 3600,
    "daily": 86_400,
    "weekly": 604_800,
    "monthly": 2_592_000,
    "yearly": 31_536_000,
}


class FeedParseError(NewsmonError):
    """The document is not a feed (or not one we can read); the message says why."""


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    link: str | None
    language: str | None
    ttl_seconds: int | None
    update_period_seconds: int | None
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class _Text:
    value: str
    is_html: bool
    language: str | None = None

    def text(self) -> str:
        return html_to_text(self.value) if self.is_html else normalise_text(self.value)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One entry, whatever the format, before normalisation."""

    guid: str | None
    link: str | None
    title: _Text | None
    summary: _Text | None
    contents: list[_Text]
    authors: list[str]
    tags: list[str]
    dates: list[datetime | None]  # published, updated, created: first present wins
    updated: datetime | None
    language: str | None


@dataclass(frozen=True, slots=True)
class _Context:
    feed_id: str
    base: str
    outlet: str | None
    language: str | None
    now: datetime
    sanitize: Callable[[str], str]  # html_sanitizer(base): one nh3 cleaner per feed

    @classmethod
    def of(
        cls, feed_id: str, base: str, outlet: str | None, language: str | None, now: datetime
    ) -> _Context:
        return cls(feed_id, base, outlet, language, now, html_sanitizer(base))


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    *,
    feed_id: str,
    feed_url: str,
    now: datetime,
    fast: bool = True,
) -> ParsedFeed:
    """Parse one fetched feed document into Items.

    ``headers`` are the HTTP response headers (any case). Relative links resolve against
    Content-Location, else ``feed_url``. Raises ``FeedParseError`` when the body is not a
    feed; everything else (bad entries, recoverable syntax errors) becomes a warning.
    ``fast=False`` skips ``ingestor.fastparse`` (plain RSS 2.0 without feedparser), whose
    Items are the same: the tests compare both paths.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if not body.lstrip(b" \t\r\n\x00").removeprefix(b"\xef\xbb\xbf").strip(b" \t\r\n\x00"):
        raise FeedParseError("empty document")
    lowered = {k.lower(): v for k, v in headers.items()}
    media_type, charset = _content_type(lowered.get("content-type", ""))
    if looks_like_json(body) or ("json" in media_type and not _looks_like_markup(body)):
        return _parse_json(body, charset, feed_id=feed_id, feed_url=feed_url, now=now)
    return _parse_xml(body, lowered, feed_id=feed_id, feed_url=feed_url, now=now, fast=fast)


def _content_type(value: str) -> tuple[str, str | None]:
    media_type, _, params = value.partition(";")
    found = re.search(r"charset\s*=\s*[\"']?([^\"';\s]+)", params, re.IGNORECASE)
    return media_type.strip().lower(), found.group(1) if found else None


def _looks_like_markup(body: bytes) -> bool:
    return body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"<"


# --- XML (feedparser) ------------------------------------------------------------------------


def _parse_xml(
    body: bytes,
    headers: dict[str, str],
    *,
    feed_id: str,
    feed_url: str,
    now: datetime,
    fast: bool = True,
) -> ParsedFeed:
    warnings: list[str] = []
    body = _defuse_entities(body, warnings)
    if body[:2] == b"\x1f\x8b":
        raise FeedParseError("not a feed: the body is gzip-compressed (decompress it first)")
    location = headers.get("content-location")
    base = _join(feed_url, location) if location else feed_url
    # feedparser is not told the base URL: it would resolve Atom ids against it too, and a
    # guid must stay verbatim to stay stable. Links are resolved here, against ``base``.
    fp_headers = {k: v for k, v in headers.items() if k != "content-location"}
    bom, codec = _sniff(body)
    if not bom and codec.startswith("utf-") and "charset" not in headers.get("content-type", ""):
        # UTF-16/32 without a byte-order mark (XML 1.0 appendix F): feedparser would try
        # UTF-8 first, which "succeeds" on ASCII text interleaved with NULs.
        media = headers.get("content-type", "").split(";")[0].strip() or "application/xml"
        fp_headers["content-type"] = f"{media}; charset={codec}"
    if fp_headers:
        # No Content-Type: read it as XML (charset from BOM or declaration, else UTF-8, as
        # RFC 7303 says); feedparser would fall back to ISO-8859-1 given other headers.
        fp_headers.setdefault("content-type", "application/xml")
    # A plain, well-formed UTF-8 RSS 2.0 document is read ~10x faster by lxml, into the same
    # dictionaries; anything else (or any doubt) goes to feedparser.
    result = parse_rss(body, fp_headers) if fast else None
    if result is None:
        result = _feedparser(body, fp_headers)
    entries = result.get("entries") or []
    if not result.get("version") and not entries:
        raise FeedParseError(_why_not_a_feed(body, result.get("bozo_exception")))
    if result.get("bozo") and result.get("bozo_exception") is not None:
        exc = result["bozo_exception"]
        warnings.append(f"{type(exc).__name__}: {exc}")
    if not result.get("version"):
        warnings.append("feed format not recognised; entries read anyway")
    feed = result.get("feed") or {}
    title = _feed_title(feed)
    language = _clean_lang(feed.get("language")) or _clean_lang(
        (feed.get("title_detail") or {}).get("language")
    )
    ctx = _Context.of(feed_id, base, title, language, now)
    items, skipped = _build_items((_from_feedparser(e) for e in entries), ctx, warnings)
    return ParsedFeed(
        title=title,
        link=canonical_url(feed.get("link") or "", base),
        language=language,
        ttl_seconds=_ttl_seconds(feed.get("ttl"), warnings),
        update_period_seconds=_update_period(
            feed.get("sy_updateperiod"), feed.get("sy_updatefrequency"), warnings
        ),
        items=items,
        warnings=warnings,
        skipped=skipped,
    )


def _feedparser(body: bytes, headers: dict[str, str]) -> Any:
    try:
        return feedparser.parse(
            io.BytesIO(body),  # a stream: a bytes string could be taken for a file name
            response_headers=headers,
            sanitize_html=False,
            # Relative URLs inside content are made absolute by our own nh3 pass against the
            # entry's base; feedparser's pass re-parses every HTML fragment and cost ~30 % of
            # a first poll (bench/polling.py). Entry links are resolved either way.
            resolve_relative_uris=False,
        )
    except Exception as e:  # the library boundary: whatever feedparser throws is a bad doc
        raise FeedParseError(f"feedparser failed: {type(e).__name__}: {e}") from e


def _join(base: str, url: str) -> str:
    try:
        return urljoin(base, url.strip())
    except ValueError:
        return base


def _feed_title(feed: Mapping[str, Any]) -> str | None:
    raw = feed.get("title")
    if not isinstance(raw, str):
        return None
    detail = feed.get("title_detail") or {}
    return one_line(_Text(raw, _is_html(detail.get("type"))).text()) or None


def _is_html(content_type: object) -> bool:
    # feedparser types RSS text as text/html; Atom says "html"/"xhtml" or a media type.
    return not isinstance(content_type, str) or "html" in content_type.lower()


def _clean_lang(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _from_feedparser(entry: Mapping[str, Any]) -> _Entry:
    contents = [
        _Text(c["value"], _is_html(c.get("type")), _clean_lang(c.get("language")))
        for c in entry.get("content") or []
        if isinstance(c.get("value"), str)
    ]

    def text(key: str) -> _Text | None:
        value = entry.get(key)
        if not isinstance(value, str):
            return None
        detail = entry.get(f"{key}_detail")
        if not detail and contents:  # feedparser copies an Atom content into "summary"
            return contents[0]
        detail = detail or {}
        return _Text(value, _is_html(detail.get("type")), _clean_lang(detail.get("language")))

    authors = [a.get("name") for a in entry.get("authors") or [] if isinstance(a, Mapping)]
    if not any(authors):
        authors = [entry.get("author")]
    tags = [t.get("term") or t.get("label") for t in entry.get("tags") or []]
    title, summary = text("title"), text("summary")
    languages = [c.language for c in contents] + [
        t.language for t in (summary, title) if t is not None
    ]
    return _Entry(
        guid=entry.get("id") if isinstance(entry.get("id"), str) else None,
        link=entry.get("link") if isinstance(entry.get("link"), str) else None,
        title=title,
        summary=summary,
        contents=contents,
        authors=[a for a in authors if isinstance(a, str)],
        tags=[t for t in tags if isinstance(t, str)],
        dates=[_parsed(entry, f"{k}_parsed") for k in ("published", "updated", "created")],
        updated=_parsed(entry, "updated_parsed"),
        language=next((lang for lang in languages if lang), None),
    )


def _parsed(entry: Mapping[str, Any], key: str) -> datetime | None:
    # Not entry.get(): feedparser 6 answers a missing "updated_parsed" with the published
    # date (a deprecated fallback), which would make every RSS item look updated.
    return to_utc(entry[key]) if key in entry else None


def _ttl_seconds(raw: object, warnings: list[str]) -> int | None:
    if raw is None:
        return None
    try:
        minutes = int(str(raw).strip())
    except ValueError:
        minutes = 0
    if minutes <= 0:
        warnings.append(f"ignored <ttl> {str(raw)[:40]!r}: not a positive number of minutes")
        return None
    return minutes * 60


def _update_period(period: object, frequency: object, warnings: list[str]) -> int | None:
    if period is None and frequency is None:
        return None
    name = str(period).strip().lower() if period is not None else "daily"  # the spec default
    if name not in UPDATE_PERIODS:
        warnings.append(f"ignored sy:updatePeriod {str(period)[:40]!r}")
        return None
    times = 1
    if frequency is not None:
        try:
            times = int(str(frequency).strip())
        except ValueError:
            times = 0
        if times <= 0:
            warnings.append(f"ignored sy:updateFrequency {str(frequency)[:40]!r}")
            times = 1
    return max(1, UPDATE_PERIODS[name] // times)


# --- entity defusing -------------------------------------------------------------------------

_BOMS: Final = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_NO_BOM: Final = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
_DOCTYPE_SUBSET: Final = re.compile(r"<!DOCTYPE[^\[>]*\[(.*?)\]\s*>", re.DOTALL)
_ENTITY_DECL: Final = re.compile(
    r"<!ENTITY\s+(%\s+)?([^\s%>]+)\s+(?:(SYSTEM|PUBLIC)\b[^>]*|(\"[^\"]*\"|'[^']*')\s*)>",
    re.DOTALL,
)


def _sniff(body: bytes) -> tuple[bytes, str]:
    """The byte-order mark (if any) and a codec good enough to read the markup."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return bom, codec
    for start, codec in _NO_BOM:
        if body.startswith(start):
            return b"", codec
    return b"", "latin-1"  # ASCII-compatible: markup reads right, bytes round-trip exactly


def _defuse_entities(body: bytes, warnings: list[str]) -> bytes:
    """The body without entity declarations that could read files or URLs (XXE) or expand
    past ``MAX_ENTITY_EXPANSION`` characters (billion laughs, quadratic blowup)."""
    bom, codec = _sniff(body)
    if "<!ENTITY".encode(codec) not in body:
        return body
    text = body[len(bom) :].decode(codec, errors="replace")
    subset = _DOCTYPE_SUBSET.search(text)
    if subset is None:
        return body
    rest = text[subset.end() :]
    drop: list[re.Match[str]] = []
    kept: list[re.Match[str]] = []
    expansion = 0
    for decl in _ENTITY_DECL.finditer(text, subset.start(1), subset.end(1)):
        parameter, name, external, value = decl.groups()
        if external or parameter or value is None or "&" in value or "%" in value:
            warnings.append(f"entity declaration {name!r} removed: external or nested")
            drop.append(decl)
        else:
            kept.append(decl)
            expansion += (len(value) - 2) * rest.count(f"&{name};")
    if expansion > MAX_ENTITY_EXPANSION:
        warnings.append(
            f"entity declarations removed: they would expand to {expansion} characters "
            f"(limit {MAX_ENTITY_EXPANSION})"
        )
        drop += kept
    if not drop:
        return body
    for decl in sorted(drop, key=lambda m: m.start(), reverse=True):
        text = text[: decl.start()] + text[decl.end() :]
    return bom + text.encode(codec, errors="replace")


_HTML_START: Final = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.I)
_ROOT: Final = re.compile(r"<(?![?!])([A-Za-z_][\w:.-]*)")
_PROLOG_NOISE: Final = re.compile(r"<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>", re.S)


def _why_not_a_feed(body: bytes, bozo: object) -> str:
    bom, codec = _sniff(body)
    head = body[len(bom) : len(bom) + 8192].decode(codec, errors="replace")
    if _HTML_START.search(head):
        return "not a feed: looks like an HTML page"
    root = _ROOT.search(_PROLOG_NOISE.sub("", head))
    if root:
        return f"XML is not RSS, Atom or RDF (root element <{root.group(1)}>)"
    if bozo is not None:
        return f"not a feed: no RSS, Atom or RDF element found ({bozo})"
    return "not a feed: no RSS, Atom or RDF element found"


# --- JSON Feed -------------------------------------------------------------------------------


def _parse_json(
    body: bytes, charset: str | None, *, feed_id: str, feed_url: str, now: datetime
) -> ParsedFeed:
    try:
        doc = parse_json_feed(body, charset)
    except JsonFeedError as e:
        raise FeedParseError(str(e)) from e
    warnings = list(doc.warnings)
    title = one_line(doc.title) if doc.title else None
    language = _clean_lang(doc.language)
    ctx = _Context.of(feed_id, feed_url, title, language, now)
    entries = (
        _Entry(
            guid=item.id,
            link=item.url or item.external_url,
            title=_Text(item.title, False) if item.title is not None else None,
            summary=_Text(item.summary, False) if item.summary is not None else None,
            contents=[
                _Text(value, is_html)
                for value, is_html in ((item.content_html, True), (item.content_text, False))
                if value
            ],
            authors=item.authors,
            tags=item.tags,
            dates=[item.date_published, item.date_modified],
            updated=item.date_modified,
            language=_clean_lang(item.language),
        )
        for item in doc.items
    )
    items, skipped = _build_items(entries, ctx, warnings)
    return ParsedFeed(
        title=title,
        link=canonical_url(doc.home_page_url or "", feed_url),
        language=language,
        ttl_seconds=None,
        update_period_seconds=None,
        items=items,
        warnings=warnings,
        skipped=skipped,
    )


# --- entries into Items ----------------------------------------------------------------------


def _build_items(
    entries: Iterable[_Entry], ctx: _Context, warnings: list[str]
) -> tuple[list[Item], int]:
    items: list[Item] = []
    skipped = 0
    for index, entry in enumerate(entries):
        try:
            item = _item(entry, ctx, warnings, index)
        except Exception as e:  # one bad entry must not lose the others
            warnings.append(f"entry {index} skipped: {type(e).__name__}: {e}")
            continue
        if item is None:
            skipped += 1
            warnings.append(f"entry {index} skipped: it has neither a guid nor a usable link")
        else:
            items.append(item)
    return items, skipped


def _item(entry: _Entry, ctx: _Context, warnings: list[str], index: int) -> Item | None:
    guid = (entry.guid or "").strip() or None
    url = canonical_url(entry.link or "", ctx.base)
    if guid is None and url is None:
        return None
    body = max(entry.contents, key=lambda c: len(c.value), default=None)
    html_source = max(
        (c for c in entry.contents if c.is_html), key=lambda c: len(c.value), default=None
    )
    if html_source is None and entry.summary is not None and entry.summary.is_html:
        html_source = entry.summary
    summary = entry.summary.text() if entry.summary is not None else ""
    text = body.text() if body is not None else summary
    return Item(
        id=item_id_for(guid=guid, url=url),
        feed_id=ctx.feed_id,
        url=url,
        guid=guid,
        title=_title(entry.title, text),
        summary=_truncate(summary, SUMMARY_LIMIT),
        html=ctx.sanitize(html_source.value) if html_source is not None else "",
        text=text,
        authors=_unique(entry.authors),
        tags=_unique(entry.tags),
        published=_published(entry.dates, ctx.now, warnings, index),
        updated=entry.updated,
        language=entry.language or ctx.language,
        outlet=ctx.outlet,
    )


def _title(title: _Text | None, text: str) -> str:
    if title is not None:
        cleaned = one_line(title.text())
        if cleaned:
            return cleaned
    return one_line(text)[:TITLE_FROM_TEXT].rstrip() or UNTITLED


def _published(
    dates: list[datetime | None], now: datetime, warnings: list[str], index: int
) -> datetime:
    published = next((d for d in dates if d is not None), None)
    if published is None:
        return now
    if published > now + FUTURE_TOLERANCE:
        warnings.append(f"entry {index}: date {published.isoformat()} is in the future, using now")
        return now
    return published


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in (one_line(v) for v in values) if v))
