"""The baseline corpus: the seed articles in seeds/ as Items.

Owns: cleaning a copied article of page furniture (a leading date line, the headline
repeated at the top, and "Follow us…"/"Next In…" trailers and everything after them),
and pairing seeds/*.txt with seeds/metadata.json into Items with stable ids.

Must not: modify the seed files, fetch anything, classify, or touch Redis. The only I/O is
reading the directory it is given.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from core.models import Item, item_id_for

FEED_ID: Final = "seeds"
GUID_PREFIX: Final = "newsmon-seed:"
METADATA_FILE: Final = "metadata.json"
SUMMARY_LIMIT: Final = 300
_REQUIRED: Final = ("file", "title", "outlet", "published", "language", "url")
_OPTIONAL: Final = ("note", "date_note")

# " date 2022-09-01 Military personnel…": a date stamp the copy tool put before the body.
_DATE_PREFIX: Final = re.compile(r"\A\s*date\s+(\d{4}-\d{2}-\d{2})\b[ \t]*")
# A line starting with one of these ends the article: what follows is the site's furniture.
_FURNITURE: Final = re.compile(
    r"^\s*(follow us\b|next in\b|others also read\b|related:|related stories\b|"
    r"related articles\b|read more:|read also:|also read:|more from\b|sign up for\b|"
    r"subscribe to\b)",
    re.IGNORECASE,
)
_SENTENCE_END: Final = (".", "!", "?", '"', "”", "’", "'", ":", ";", ")")


def seed_date(raw: str) -> date | None:
    """The date from a leading " date YYYY-MM-DD" stamp, if the seed has one."""
    found = _DATE_PREFIX.match(raw)
    return date.fromisoformat(found.group(1)) if found else None


def clean_seed_text(raw: str, *, title: str | None = None) -> str:
    """The article body without page furniture; whitespace tidied, words untouched.

    Removes a leading date stamp, a first line that is the headline (equal to ``title``,
    or headline-shaped: no closing punctuation and followed by a blank line), and the
    first furniture line ("Follow us", "Next In", "Others Also Read", "Related:", …)
    with everything after it. Trailing whitespace is stripped from every line and runs of
    blank lines become one, so paragraphs stay separated by a single blank line.
    """
    text = _DATE_PREFIX.sub("", raw, count=1)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    for index, line in enumerate(lines):
        if _FURNITURE.match(line):
            lines = lines[:index]
            break
    lines = _drop_headline(lines, title)
    paragraphs: list[str] = []
    for line in lines:
        if line.strip() or (paragraphs and paragraphs[-1]):
            paragraphs.append(line if line.strip() else "")
    return "\n".join(paragraphs).strip()


def _drop_headline(lines: list[str], title: str | None) -> list[str]:
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return lines
    head = lines[first].strip()
    same_as_title = title is not None and _squash(head) == _squash(title)
    followed_by_blank = first + 1 < len(lines) and not lines[first + 1].strip()
    headline_shaped = followed_by_blank and not head.endswith(_SENTENCE_END)
    return lines[first + 1 :] if same_as_title or headline_shaped else lines


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def summarise(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """The first paragraph, cut at a word boundary to at most ``limit`` characters."""
    first = " ".join(text.strip().split("\n\n", 1)[0].split())
    if len(first) <= limit:
        return first
    cut = first[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"


def load_seed_items(seeds_dir: Path) -> list[Item]:
    """One Item per seed file, in metadata order; ValueError names any mismatch."""
    entries = _read_metadata(seeds_dir)
    on_disk = {path.name for path in seeds_dir.glob("*.txt")}
    listed = [entry["file"] for entry in entries]
    unlisted = sorted(on_disk - set(listed))
    if unlisted:
        raise ValueError(f"{seeds_dir / unlisted[0]} has no entry in {METADATA_FILE}")
    return [_item(seeds_dir, entry) for entry in entries]


def _read_metadata(seeds_dir: Path) -> list[dict[str, Any]]:
    path = seeds_dir / METADATA_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read seed metadata {path}: {e}") from e
    if not isinstance(doc, list):
        raise ValueError(f"{path} must hold a JSON list of seed entries")
    seen: set[str] = set()
    for index, entry in enumerate(doc):
        name = entry.get("file") if isinstance(entry, dict) else None
        where = f"{path} entry {index} ({name or 'no file'})"
        if not isinstance(entry, dict) or not isinstance(name, str) or not name:
            raise ValueError(f"{where}: each entry needs a 'file' name")
        missing = [key for key in _REQUIRED if key not in entry]
        unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
        if missing or unknown:
            raise ValueError(f"{where}: missing keys {missing}, unknown keys {unknown}")
        if name in seen:
            raise ValueError(f"{where}: {name} is listed twice")
        seen.add(name)
    return doc


def _item(seeds_dir: Path, entry: dict[str, Any]) -> Item:
    path = seeds_dir / entry["file"]
    if not path.is_file():
        raise ValueError(f"{METADATA_FILE} lists {entry['file']} but {path} does not exist")
    raw = path.read_text(encoding="utf-8")
    published = _published(entry, path)
    stamped = seed_date(raw)
    if stamped is not None and stamped != published.date():
        raise ValueError(
            f"{path}: metadata says published {published.date()} but the text is dated {stamped}"
        )
    text = clean_seed_text(raw, title=entry["title"])
    guid = f"{GUID_PREFIX}{path.stem}"
    return Item(
        id=item_id_for(guid=guid),
        feed_id=FEED_ID,
        guid=guid,
        url=entry["url"],
        title=entry["title"],
        summary=summarise(text),
        text=text,
        language=entry["language"],
        outlet=entry["outlet"],
        published=published,
    )


def _published(entry: dict[str, Any], path: Path) -> datetime:
    value = entry["published"]
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: 'published' {value!r} is not an ISO 8601 date") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
