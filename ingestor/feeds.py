"""The feed list: what to poll, how often, and the stable id each feed is known by.

A feeds file is YAML with one top-level key, ``feeds:``, a list of entries::

    feeds:
      - name: Khmer Times
        url: https://www.khmertimeskh.com/feed/
        interval: 30m          # or interval_s: 1800; default 15m, floor 60 s
        fetch_full_text: true  # default false
        enabled: true          # default true
        id: khmer-times        # optional; derived from the name, else from the URL

Owns: the ``FeedDef`` model, feed ids, interval syntax and loading/validating a feeds file
(errors name the file, the entry and the field; duplicate ids or URLs are errors).
Must not: fetch anything, schedule anything or touch Redis. The only I/O is reading the file
``load_feeds_file`` is given; ``parse_feeds`` does the same work on already-loaded data.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.errors import NewsmonError

DEFAULT_INTERVAL_S: Final = 900
MIN_INTERVAL_S: Final = 60
ID_MAX_LEN: Final = 64
URL_SCHEMES: Final = ("http", "https")

_SLUG: Final = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_DURATION: Final = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS: Final = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


class FeedsFileError(NewsmonError, ValueError):
    """A feeds file cannot be read or one of its entries is invalid.

    ``problems`` lists every problem found, each naming the entry and the field.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        shown = problems[0] if len(problems) == 1 else "\n  " + "\n  ".join(problems)
        super().__init__(f"{path}: {shown}")
        self.path = path
        self.problems = problems


# -- intervals ------------------------------------------------------------------------------
def parse_interval(value: int | str) -> int:
    """Seconds from ``900``, ``"900"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2h30m"`` or ``"1d"``.

    Raises ``ValueError`` saying what was given and what is accepted.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"interval must be seconds or a duration like '15m', not {type(value).__name__}"
        )
    if isinstance(value, int):
        seconds = value
    else:
        text = value.strip().lower().replace(" ", "")
        if text.isdigit():
            seconds = int(text)
        else:
            match = _DURATION.match(text)
            if not text or match is None:
                raise ValueError(
                    f"invalid interval {value!r}: use seconds (900) or a duration such as "
                    "'90s', '15m', '1h', '2h30m'"
                )
            seconds = sum(
                int(part) * unit
                for part, (_, unit) in zip(match.groups(), _UNITS, strict=True)
                if part
            )
    if seconds <= 0:
        raise ValueError(f"interval must be positive, got {value!r}")
    return seconds


def format_interval(seconds: float) -> str:
    """The inverse of ``parse_interval`` for display: 5400 → ``"1h30m"``, 120 → ``"2m"``."""
    left = max(round(seconds), 0)
    if left == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# -- ids ------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def feed_id_for(url: str, name: str | None = None) -> str:
    """A stable slug id: from ``name`` when given, else from the URL's host, path and query.

    The query is part of the basis because search feeds differ only by it. A slug longer than
    ``ID_MAX_LEN`` is cut and given a hash suffix of its whole basis, so ids stay unique.
    """
    basis = (name or "").strip()
    slug = _slug(basis)
    if not slug:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").removeprefix("www.")
        basis = f"{host}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        slug = _slug(basis)
    if not slug:
        raise ValueError(f"cannot derive a feed id from url {url!r} and name {name!r}")
    if len(slug) > ID_MAX_LEN:
        digest = hashlib.sha256(basis.encode("utf-8")).hexdigest()[:8]
        slug = f"{slug[: ID_MAX_LEN - 9].rstrip('-')}-{digest}"
    return slug


# -- the model ------------------------------------------------------------------------------
class FeedDef(BaseModel):
    """One feed to poll. ``interval_s`` also accepts ``interval: 15m`` on input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    id: str = ""  # derived from the name, else the URL, when not given (see _fill_in)
    name: str = ""  # the URL's host when not given
    interval_s: int = DEFAULT_INTERVAL_S
    fetch_full_text: bool = False
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _fill_in(cls, data: Any) -> Any:
        """Derive ``id`` and ``name`` when missing; accept ``interval`` for ``interval_s``."""
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        if "interval" in out:
            if "interval_s" in out:
                raise ValueError("give either interval or interval_s, not both")
            out["interval_s"] = out.pop("interval")
        url, name = out.get("url"), out.get("name")
        if isinstance(url, str) and urlsplit(url.strip()).hostname:
            if out.get("id") is None:
                out["id"] = feed_id_for(url, name if isinstance(name, str) else None)
            if name is None or (isinstance(name, str) and not name.strip()):
                out["name"] = urlsplit(url.strip()).hostname
        return out

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme.lower() not in URL_SCHEMES:
            raise ValueError(f"url must be http or https, not {parts.scheme or 'no scheme'!r}")
        if not parts.hostname:
            raise ValueError(f"url {value!r} has no host")
        return value

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _SLUG.match(value) or len(value) > ID_MAX_LEN:
            raise ValueError(
                f"id {value!r} must be lower-case letters, digits and single '-' "
                f"(at most {ID_MAX_LEN} characters)"
            )
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be empty")
        return value

    @field_validator("interval_s", mode="before")
    @classmethod
    def _check_interval(cls, value: Any, info: ValidationInfo) -> int:
        seconds = parse_interval(value)
        if seconds < MIN_INTERVAL_S:
            feed = info.data.get("id") or info.data.get("url") or "?"
            raise ValueError(
                f"feed {feed!r}: interval {format_interval(seconds)} is below the floor of "
                f"{MIN_INTERVAL_S}s"
            )
        return seconds


# -- loading --------------------------------------------------------------------------------
def load_feeds_file(path: Path) -> list[FeedDef]:
    """Read and validate a feeds file; ``FeedsFileError`` lists every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FeedsFileError(str(path), [f"cannot read: {e}"]) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FeedsFileError(str(path), [f"not valid YAML: {e}"]) from e
    return parse_feeds(data, source=str(path))


def parse_feeds(data: Any, *, source: str = "<feeds>") -> list[FeedDef]:
    """Validate a loaded feeds document (``{"feeds": [...]}``); errors name ``source``."""
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        raise FeedsFileError(source, ["expected a mapping with a 'feeds:' list at the top"])
    unknown = sorted(str(k) for k in data if k != "feeds")
    if unknown:
        raise FeedsFileError(source, [f"unknown top-level key(s): {', '.join(unknown)}"])
    feeds: list[tuple[int, FeedDef]] = []
    problems: list[str] = []
    for index, entry in enumerate(data["feeds"]):
        label = _entry_label(index, entry)
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected a mapping, got {type(entry).__name__}")
            continue
        try:
            feeds.append((index, FeedDef.model_validate(entry)))
        except ValidationError as e:
            problems.extend(f"{label}: {_describe(err)}" for err in e.errors())
    problems.extend(_duplicates(feeds))
    if problems:
        raise FeedsFileError(source, problems)
    return [feed for _, feed in feeds]


def _entry_label(index: int, entry: Any) -> str:
    if isinstance(entry, dict):
        for key in ("id", "name", "url"):
            if isinstance(entry.get(key), str) and entry[key].strip():
                return f"feed #{index} ({entry[key].strip()})"
    return f"feed #{index}"


def _describe(err: Any) -> str:
    field = ".".join(str(p) for p in err.get("loc", ())) or "entry"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{field}: {msg}"


def _url_key(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()


def _duplicates(feeds: list[tuple[int, FeedDef]]) -> list[str]:
    problems: list[str] = []
    first_id: dict[str, int] = {}
    first_url: dict[str, int] = {}
    for index, feed in feeds:
        label = f"feed #{index} ({feed.id})"
        if feed.id in first_id:
            problems.append(f"{label}: id: duplicate id, already used by feed #{first_id[feed.id]}")
        first_id.setdefault(feed.id, index)
        key = _url_key(feed.url)
        if key in first_url:
            problems.append(f"{label}: url: duplicate url, already used by feed #{first_url[key]}")
        first_url.setdefault(key, index)
    return problems
