"""JSON Feed 1.0 and 1.1 (https://www.jsonfeed.org/version/1.1/) read into plain data.

Owns: recognising a JSON Feed, and reading its feed-level and item-level fields field by
field: a field of the wrong type is skipped with a warning, never fatal (feeds in the wild
put numbers in ``id``, objects in ``title``, strings in ``authors``…).

Must not: do I/O, sanitise HTML, canonicalise URLs or build ``Item``s (``ingestor.parser``
does that), or raise anything but ``JsonFeedError`` for a bad document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from core.errors import NewsmonError
from ingestor.normalise import to_utc

VERSION_PREFIX: Final = "https://jsonfeed.org/version/"
KNOWN_VERSIONS: Final = ("1", "1.1")
_HTTP_PREFIX: Final = "http://jsonfeed.org/version/"


class JsonFeedError(NewsmonError):
    """The document is not JSON, or is JSON but not a JSON Feed."""


@dataclass(frozen=True, slots=True)
class JsonFeedItem:
    id: str | None = None
    url: str | None = None
    external_url: str | None = None
    title: str | None = None
    content_html: str | None = None
    content_text: str | None = None
    summary: str | None = None
    date_published: datetime | None = None
    date_modified: datetime | None = None
    authors: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    language: str | None = None


@dataclass(frozen=True, slots=True)
class JsonFeed:
    version: str  # what follows VERSION_PREFIX: "1", "1.1", or an unknown one
    title: str | None = None
    home_page_url: str | None = None
    feed_url: str | None = None
    language: str | None = None
    authors: list[str] = field(default_factory=list)
    items: list[JsonFeedItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def looks_like_json(body: bytes) -> bool:
    """True when the first non-blank character (after a UTF-8 BOM) is ``{``."""
    return body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{"


def _decode(body: bytes, charset: str | None) -> str:
    # RFC 8259 §8.1: JSON is UTF-8; json.detect_encoding also recognises UTF-16/32.
    try:
        return body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        pass
    if charset:
        try:
            return body.decode(charset)
        except (UnicodeDecodeError, LookupError):
            pass
    raise JsonFeedError("not a JSON Feed: the document is not valid UTF-8 JSON")


def parse_json_feed(body: bytes, charset: str | None = None) -> JsonFeed:
    """Read a JSON Feed. ``charset`` (from Content-Type) is tried if UTF-8 fails.

    Raises ``JsonFeedError`` when the body is not JSON, not an object, or has no
    ``version`` starting with ``https://jsonfeed.org/version/``.
    """
    try:
        document = json.loads(_decode(body, charset))
    except (json.JSONDecodeError, RecursionError) as e:
        raise JsonFeedError(f"not a JSON Feed: invalid JSON ({e})") from e
    if not isinstance(document, dict):
        raise JsonFeedError(f"not a JSON Feed: top level is a {type(document).__name__}")
    version = document.get("version")
    reader = _Reader()
    if isinstance(version, str) and version.startswith(_HTTP_PREFIX):
        # Seen in the wild (pxlnv.com); the spec says https, but nothing else is wrong.
        reader.warn(f"version {version!r} uses http://, read as https://")
        version = "https://" + version.removeprefix("http://")
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIX):
        raise JsonFeedError(f"not a JSON Feed: version is {version!r}, not {VERSION_PREFIX}…")
    number = version.removeprefix(VERSION_PREFIX)
    if number not in KNOWN_VERSIONS:
        reader.warn(f"unknown JSON Feed version {number!r}, read as 1.1")
    authors = reader.authors(document, "feed")
    items = []
    raw_items = document.get("items")
    if raw_items is None:
        reader.warn("feed has no items")
    elif not isinstance(raw_items, list):
        reader.warn(f"feed items is a {type(raw_items).__name__}, not a list")
    else:
        for index, raw in enumerate(raw_items):
            if not isinstance(raw, dict):
                reader.warn(f"item {index} is a {type(raw).__name__}, not an object: skipped")
                continue
            items.append(reader.item(raw, index, authors))
    return JsonFeed(
        version=number,
        title=reader.string(document, "title", "feed"),
        home_page_url=reader.string(document, "home_page_url", "feed"),
        feed_url=reader.string(document, "feed_url", "feed"),
        language=reader.string(document, "language", "feed"),
        authors=authors,
        items=items,
        warnings=reader.warnings,
    )


class _Reader:
    """Reads fields of the expected type, recording a warning for each one it skips."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def _wrong(self, where: str, key: str, value: Any, expected: str) -> None:
        self.warn(f"{where}: {key} is a {type(value).__name__}, not {expected}: ignored")

    def string(self, obj: dict[str, Any], key: str, where: str) -> str | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self._wrong(where, key, value, "a string")
            return None
        return value

    def date(self, obj: dict[str, Any], key: str, where: str) -> datetime | None:
        raw = self.string(obj, key, where)
        if raw is None:
            return None
        parsed = to_utc(raw)
        if parsed is None:
            self.warn(f"{where}: {key} {raw[:40]!r} is not an RFC 3339 date: ignored")
        return parsed

    def identifier(self, obj: dict[str, Any], where: str) -> str | None:
        value = obj.get("id")
        if value is None or isinstance(value, str):
            return value
        # The spec says string, but numbers are common in the wild (json.org examples).
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self._wrong(where, "id", value, "a string")
        return None

    def authors(self, obj: dict[str, Any], where: str) -> list[str]:
        # 1.1 "authors" (a list) replaces 1.0 "author" (one object); prefer the former.
        raw = obj.get("authors")
        if raw is not None and not isinstance(raw, list):
            self._wrong(where, "authors", raw, "a list")
            raw = None
        if raw is None and "author" in obj:
            raw = [obj["author"]]
        names: list[str] = []
        for author in raw or []:
            if not isinstance(author, dict):
                self.warn(f"{where}: an author is a {type(author).__name__}, not an object")
                continue
            name = self.string(author, "name", f"{where} author")
            if name and name.strip() and name.strip() not in names:
                names.append(name.strip())
        return names

    def tags(self, obj: dict[str, Any], where: str) -> list[str]:
        raw = obj.get("tags")
        if raw is None:
            return []
        if not isinstance(raw, list):
            self._wrong(where, "tags", raw, "a list")
            return []
        tags = [t.strip() for t in raw if isinstance(t, str) and t.strip()]
        if len(tags) != len(raw):
            self.warn(f"{where}: {len(raw) - len(tags)} tag(s) not non-empty strings: ignored")
        return list(dict.fromkeys(tags))

    def item(self, raw: dict[str, Any], index: int, feed_authors: list[str]) -> JsonFeedItem:
        where = f"item {index}"
        # JSON Feed 1.1: items without authors inherit the feed's.
        authors = self.authors(raw, where) or list(feed_authors)
        return JsonFeedItem(
            id=self.identifier(raw, where),
            url=self.string(raw, "url", where),
            external_url=self.string(raw, "external_url", where),
            title=self.string(raw, "title", where),
            content_html=self.string(raw, "content_html", where),
            content_text=self.string(raw, "content_text", where),
            summary=self.string(raw, "summary", where),
            date_published=self.date(raw, "date_published", where),
            date_modified=self.date(raw, "date_modified", where),
            authors=authors,
            tags=self.tags(raw, where),
            language=self.string(raw, "language", where),
        )
