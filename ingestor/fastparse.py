"""A fast path for well-formed UTF-8 RSS 2.0: lxml instead of feedparser's SAX machinery.

Owns: recognising the plain, common shape of an RSS 2.0 document (UTF-8, no DOCTYPE, no
xml:base or xml:lang, a known set of elements each holding text only) and reading it into
the same dictionaries ``feedparser.parse`` returns (``feed``, ``entries``, ``version``), so
``ingestor.parser`` turns them into Items with the very code it uses for feedparser's
output. Each value goes through feedparser's own steps (strip, URI join, the UTF-8
"double-encoding" repair, the cp1252 mapping, the looks-like-HTML guess, date parsing), so
the Items are equal field by field (tests/ingestor/test_fastparse.py checks that over the
shared corpus).

Must not: do I/O, guess. Anything it does not handle exactly like feedparser (Atom, RSS
0.9x/1.0/RDF, other encodings, DTDs and entities, unknown elements or namespaces, nested
markup, duplicated elements whose precedence is subtle) makes ``parse_rss`` return None and
the caller falls back to feedparser.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any, Final

from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin
from lxml import etree  # type: ignore[import-untyped]  # no stubs installed

# Entities are never expanded, DTDs never loaded, nothing fetched; huge_tree stays off
# (libxml2's own limits on depth and text size hold).
_PARSER: Final = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_blank_text=False,
    strip_cdata=True,
)
_DC: Final = "http://purl.org/dc/elements/1.1/"
_CONTENT: Final = "http://purl.org/rss/1.0/modules/content/"
_ATOM: Final = "http://www.w3.org/2005/Atom"
_SY: Final = "http://purl.org/rss/1.0/modules/syndication/"
_WFW: Final = "http://wellformedweb.org/CommentAPI/"
_SLASH: Final = "http://purl.org/rss/1.0/modules/slash/"
# Media types feedparser reads as XML whose charset defaults to the document's (RFC 3023);
# text/xml without a charset means us-ascii there, so it needs an explicit one.
_XML_TYPES: Final = frozenset(
    {"application/xml", "application/rss+xml", "application/atom+xml", "application/rdf+xml"}
)
_CONTENT_TYPE: Final = re.compile(
    r"\s*([a-z]+/[a-z+.-]+)\s*(?:;\s*charset=([A-Za-z0-9_-]+)\s*)?", re.IGNORECASE
)
_DECLARATION: Final = re.compile(rb"<\?xml\s[^>]*?\?>")
_ENCODING: Final = re.compile(rb"""encoding\s*=\s*["']([^"']*)["']""")
# Refused outright: any of these changes how feedparser reads the document.
_REFUSED_BYTES: Final = (b"<!DOCTYPE", b"<!ENTITY", b"xml:base", b"xml:lang")
# Channel children that never change the feed's title, link, language, ttl or sy fields
# (feedparser files them under other keys); anything else means the slow path.
_CHANNEL_IGNORED: Final = frozenset(
    {
        "description", "copyright", "managingeditor", "webmaster", "pubdate",
        "lastbuilddate", "category", "generator", "docs", "cloud", "rating", "skiphours",
        "skipdays",
    }
)  # fmt: skip
_IMAGE_CHILDREN: Final = frozenset({"title", "url", "link", "width", "height", "description"})
_ITEM_IGNORED: Final = frozenset(
    {"comments", "enclosure", "source", f"{{{_WFW}}}commentrss", f"{{{_WFW}}}comment"}
    | {f"{{{_SLASH}}}comments"}
)
_LINK_ENTITY: Final = re.compile("&([A-Za-z0-9_]+);")
_EMAIL: Final = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)  # feedparser's own (mixin._sync_author_detail)


class _Refused(Exception):
    """The document is outside the fast path: feedparser reads it."""


def parse_rss(body: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """feedparser-shaped ``{"version", "feed", "entries", "bozo"}`` for a plain RSS 2.0
    document, or None when feedparser must read it. ``headers`` are lower-cased and exactly
    what feedparser would be given."""
    if "content-language" in headers:
        return None  # feedparser makes it the default language of every element
    fix_utf8 = _utf8_label(body, headers)
    if fix_utf8 is None or any(marker in body for marker in _REFUSED_BYTES):
        return None
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    try:
        return _Reader(fix_utf8).document(root)
    except _Refused:
        return None


def _utf8_label(body: bytes, headers: Mapping[str, str]) -> bool | None:
    """None unless feedparser would decode ``body`` as UTF-8 without complaint; else whether
    it calls the encoding exactly "utf-8" (it repairs double-encoded text only then)."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or body[:1] in (b"\x00",) or body[1:2] == b"\x00":
        return None
    if not _declared_utf8(body):
        return None
    label = _header_label(headers)
    if label is None:
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return label == "utf-8"


def _declared_utf8(body: bytes) -> bool:
    head = body[:200].removeprefix(b"\xef\xbb\xbf")
    if not head.startswith(b"<?xml"):
        return True
    decl = _DECLARATION.match(head)
    if decl is None:
        return False
    found = _ENCODING.search(decl.group(0))
    return found is None or found.group(1).decode("ascii", "replace").lower() == "utf-8"


def _header_label(headers: Mapping[str, str]) -> str | None:
    """The encoding feedparser will name, when it is UTF-8 (its label matters, see above)."""
    if "content-type" not in headers:
        # feedparser would assume ISO-8859-1 given other headers (parse_feed sets a type)
        return None if headers else "utf-8"
    found = _CONTENT_TYPE.fullmatch(headers["content-type"])
    if found is None:
        return None
    media, charset = found.group(1).lower(), found.group(2)
    if media not in _XML_TYPES and not (media == "text/xml" and charset):
        return None
    if charset is None:
        return "utf-8"
    return charset if charset.lower() == "utf-8" else None


def _name(element: Any) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        raise _Refused  # a comment or processing instruction where text is expected
    if tag[0] == "{":
        uri, _, local = tag[1:].partition("}")
        return f"{{{uri}}}{local.lower()}"
    return str(tag).lower()


class _Reader:
    def __init__(self, fix_utf8: bool) -> None:
        self.fix_utf8 = fix_utf8

    def document(self, root: Any) -> dict[str, Any]:
        if _name(root) != "rss" or not str(root.get("version", "")).startswith("2."):
            raise _Refused
        if len(root) != 1 or (root.text and root.text.strip()):
            raise _Refused
        channel = root[0]
        if _name(channel) != "channel" or set(channel.attrib):
            raise _Refused
        feed: dict[str, Any] = {}
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for child in channel:
            if not isinstance(child.tag, str):
                continue  # a comment between elements: feedparser ignores it too
            if _name(child) == "item":
                entries.append(self.item(child))
            else:
                self.channel_child(feed, seen, child)
        return {"version": "rss20", "bozo": 0, "feed": feed, "entries": entries}

    def channel_child(self, feed: dict[str, Any], seen: set[str], child: Any) -> None:
        name = _name(child)
        if name in ("title", "link"):
            if name in seen:
                raise _Refused  # the first non-empty title wins there: keep it simple
            seen.add(name)
            self.feed_text(feed, name, child)
        elif name in ("language", "ttl", f"{{{_SY}}}updateperiod"):
            feed[_feed_key(name)] = self.text(child, bare=True)
        elif name == f"{{{_SY}}}updatefrequency":
            feed["sy_updatefrequency"] = self.text(child, bare=True)
        elif name == "image":
            if any(not isinstance(c.tag, str) or _name(c) not in _IMAGE_CHILDREN for c in child):
                raise _Refused
        elif name == f"{{{_ATOM}}}link":
            if str(child.get("rel", "alternate")).lower() == "alternate" or len(child):
                raise _Refused
        elif name not in _CHANNEL_IGNORED or len(child):
            raise _Refused

    def feed_text(self, feed: dict[str, Any], name: str, element: Any) -> None:
        if element.attrib:
            raise _Refused
        value = self.text(element)
        if name == "link":
            feed["link"] = _LINK_ENTITY.sub(r"&\g<1>", _urljoin("", value) if value else value)
            return
        feed["title"], kind = self.typed(value, "text/plain")
        feed["title_detail"] = {"type": kind, "language": None}

    def text(self, element: Any, *, bare: bool = False) -> str:
        """An element's text as feedparser's ``pop`` leaves it (before per-element steps)."""
        if len(element) or (bare and element.attrib):
            raise _Refused
        output = (element.text or "").strip()
        if output.isascii():
            return output  # neither step below changes ASCII (and isascii() is O(1))
        if self.fix_utf8:
            with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                output = output.encode("iso-8859-1").decode("utf-8")
        return output.translate(_cp1252)

    @staticmethod
    def typed(value: str, content_type: str) -> tuple[str, str]:
        if content_type == "text/plain" and _FeedParserMixin.looks_like_html(value):
            return value, "text/html"
        return value, content_type

    def item(self, element: Any) -> dict[str, Any]:  # noqa: C901 - one branch per element
        if element.attrib:
            raise _Refused
        entry: dict[str, Any] = {}
        names: list[str | None] = []
        last_author: str | None = None
        counts: dict[str, int] = {}
        for child in element:
            if not isinstance(child.tag, str):
                continue
            name = _name(child)
            counts[name] = counts.get(name, 0) + 1
            if name == "title":
                value, kind = self.typed(self.text(child, bare=True), "text/plain")
                entry["title"] = value
                entry["title_detail"] = {"type": kind, "language": None, "value": value}
            elif name == "link":
                value = self.text(child, bare=True)
                value = _urljoin("", value) if value else value
                entry["link"] = _LINK_ENTITY.sub(r"&\g<1>", value.replace("&amp;", "&"))
            elif name == "guid":
                self.guid(entry, child)
            elif name == "description":
                value = self.text(child, bare=True)
                entry["summary"] = value
                entry["summary_detail"] = {"type": "text/html", "language": None, "value": value}
            elif name == f"{{{_CONTENT}}}encoded":
                value = self.text(child, bare=True)
                entry.setdefault("content", []).append(
                    {"type": "text/html", "language": None, "value": value}
                )
                entry.setdefault("summary", value)
            elif name in ("author", f"{{{_DC}}}creator"):
                last_author = self.text(child, bare=True)
                names.append(_author_name(last_author))
            elif name == "category":
                if set(child.attrib) - {"domain"}:
                    raise _Refused
                value = self.text(child)
                if value:
                    entry.setdefault("tags", []).append({"term": value})
            elif name in ("pubdate", f"{{{_DC}}}date"):
                key = "published_parsed" if name == "pubdate" else "updated_parsed"
                entry[key] = _parse_date(self.text(child, bare=True))
            elif name not in _ITEM_IGNORED or len(child):
                raise _Refused
        if any(counts.get(n, 0) > 1 for n in ("title", "link", "guid", "description")):
            raise _Refused  # feedparser's precedence rules for repeats are subtle
        if last_author is not None:
            entry["author"] = last_author
            entry["authors"] = [{"name": n} if n else {} for n in names]
        return entry

    def guid(self, entry: dict[str, Any], element: Any) -> None:
        if set(element.attrib) - {"isPermaLink", "ispermalink"} or len(element.attrib) > 1:
            raise _Refused
        permalink = next(iter(element.attrib.values()), "true") == "true"
        value = self.text(element)
        if permalink and value:
            value = _urljoin("", value)
        entry["id"] = value
        if permalink:
            entry.setdefault("link", value)


def _feed_key(name: str) -> str:
    return "sy_updateperiod" if name.startswith("{") else name


def _author_name(author: str) -> str | None:
    """The name feedparser files for an RSS author: the text without its e-mail address."""
    if not author:
        return None
    email = _EMAIL.search(author)
    if email:
        author = author.replace(email.group(0), "").replace("()", "").replace("<>", "")
        author = author.replace("&lt;&gt;", "").strip()
        if author and author[0] == "(":
            author = author[1:]
        if author and author[-1] == ")":
            author = author[:-1]
        author = author.strip()
    return author or None
