"""parse_feed over the shared robustness corpus (../shared/corpus), compared with feedparser.

For every file: ``parse_feed`` returns a ParsedFeed or raises FeedParseError, nothing else.
Where plain ``feedparser.parse`` finds entries, our items correspond to them one for one
(minus the entries we skip for having neither guid nor link): same guids, same links and
titles once put through our normalisation. One test per corpus folder keeps failures
readable and lets pytest-xdist spread the folders if it is ever used.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import feedparser
import pytest

from ingestor.jsonfeed import looks_like_json
from ingestor.normalise import canonical_url, html_to_text, one_line
from ingestor.parser import FeedParseError, ParsedFeed, parse_feed

pytestmark = pytest.mark.corpus

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
if not CORPUS.is_dir():
    pytest.skip(f"corpus not found at {CORPUS}", allow_module_level=True)

NOW = datetime(2026, 9, 1, tzinfo=UTC)
NOT_DATA = {"LICENSE", "COPYING", "README.md"}
# feedparser's own test files carry the HTTP headers its test server sent, e.g.
# "Header:      Content-type: application/xml; charset=utf-8" in the leading comment.
HEADER_LINE = re.compile(rb"^Header:\s*([\w-]+):\s*(.*?)\s*$", re.MULTILINE)


def _folders() -> list[Path]:
    folders = []
    for top in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        subs = sorted(p for p in top.iterdir() if p.is_dir())
        folders += subs if subs else [top]
    return folders


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name not in NOT_DATA
        and not any(part.startswith(("LICENSE", "COPYING")) for part in p.parts)
    )


def _headers(body: bytes) -> dict[str, str]:
    head = body[:2000]
    return {
        m.group(1).decode("ascii", "replace").lower(): m.group(2).decode("latin-1")
        for m in HEADER_LINE.finditer(head)
    }


def _title_of(entry: dict) -> str:
    title = entry.get("title")
    if not isinstance(title, str):
        return ""
    kind = (entry.get("title_detail") or {}).get("type") or "text/html"
    return one_line(html_to_text(title) if "html" in kind else title)


def _compare(path: Path, body: bytes, headers: dict[str, str], ours: ParsedFeed) -> list[str]:
    """Differences between our items and plain feedparser's entries."""
    if looks_like_json(body):
        return []  # feedparser's JSON support is not the oracle: ours is our own parser
    theirs = feedparser.parse(io.BytesIO(body), response_headers=headers).get("entries") or []
    if not theirs:
        return []
    base = _url_for(path)
    expected = []
    for entry in theirs:
        guid = (entry.get("id") or "").strip() or None
        url = canonical_url(entry.get("link") or "", base)
        if guid is None and url is None:
            continue
        expected.append((guid, url, _title_of(entry)))
    got = [(i.guid, i.url, i.title) for i in ours.items]
    name = path.relative_to(CORPUS)
    if len(got) != len(expected):
        return [f"{name}: {len(got)} items, feedparser has {len(expected)} usable entries"]
    problems = []
    for n, (mine, other) in enumerate(zip(got, expected, strict=True)):
        same_title = not other[2] or mine[2] == other[2]  # no title: ours is derived
        if _guid_differs(mine[0], other[0], headers) or mine[1] != other[1] or not same_title:
            problems.append(f"{name} entry {n}: ours {mine!r} != feedparser {other!r}")
    return problems


def _guid_differs(mine: str | None, theirs: str | None, headers: dict[str, str]) -> bool:
    # Accepted divergence: given a Content-Location header, feedparser resolves Atom ids
    # against it; we keep the guid verbatim (a guid must not depend on where we fetched).
    location = headers.get("content-location")
    if mine == theirs or mine is None or theirs is None or not location:
        return mine != theirs
    return urljoin(location, mine) != theirs


def _url_for(path: Path) -> str:
    return f"http://corpus.test/{path.relative_to(CORPUS).as_posix()}"


@pytest.mark.parametrize("folder", _folders(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_folder(folder: Path) -> None:
    failures: list[str] = []
    for path in _files(folder):
        body = path.read_bytes()
        headers = _headers(body)
        try:
            ours = parse_feed(body, headers, feed_id="corpus", feed_url=_url_for(path), now=NOW)
        except FeedParseError:
            continue
        except Exception as e:
            failures.append(f"{path.relative_to(CORPUS)}: raised {type(e).__name__}: {e}")
            continue
        failures += _compare(path, body, headers, ours)
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures[:50])
