"""Items as an Atom 1.0 feed (RFC 4287), with RFC 5005 paging (``rel="next"``).

Owns: the XML. Must not: query anything (the router passes the items in).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from core.models import StoredItem

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("", ATOM)


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        el.text = _xml_safe(text)
    return el


def _xml_safe(text: str) -> str:
    # XML 1.0 forbids most control characters, even escaped.
    return "".join(
        c
        for c in text
        if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") or c > "\uffff"
    )


def _ts(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render(
    items: Sequence[StoredItem],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    next_url: str | None,
    now: datetime,
) -> bytes:
    feed = ET.Element(f"{{{ATOM}}}feed")
    _el(feed, "id", feed_id)
    _el(feed, "title", title)
    newest = max((s.classified_at or s.ingested_at for s in items), default=now)
    _el(feed, "updated", _ts(newest))
    _el(feed, "generator", "newsmon")
    _el(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    if next_url:
        _el(feed, "link", rel="next", href=next_url, type="application/atom+xml")
    author = _el(feed, "author")
    _el(author, "name", "newsmon")
    for stored in items:
        _entry(feed, stored)
    out: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return out


def _entry(feed: ET.Element, stored: StoredItem) -> None:
    item = stored.item
    entry = _el(feed, "entry")
    _el(entry, "id", f"urn:newsmon:item:{item.id}")
    _el(entry, "title", item.title or "(untitled)")
    _el(entry, "updated", _ts(item.updated or item.published))
    _el(entry, "published", _ts(item.published))
    if item.url:
        _el(entry, "link", rel="alternate", href=item.url)
    for name in item.authors or [item.outlet or item.feed_id]:
        _el(_el(entry, "author"), "name", name)
    labels = stored.labels
    if labels is not None:
        for kind, values in (
            ("topic", labels.topics),
            ("official", labels.officials),
            ("country", labels.countries),
        ):
            for value in values:
                _el(entry, "category", term=value, scheme=f"urn:newsmon:{kind}")
    if item.summary or item.text:
        _el(entry, "summary", (item.summary or item.text)[:2000], type="text")
