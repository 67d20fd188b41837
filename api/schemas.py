"""Request and response schemas of the HTTP API (apart from the events on the bus).

Timestamps are RFC 3339 in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.models import Labels, StoredItem

FEED_ID = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 7 * 86_400


class ItemOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    feed_id: str
    title: str
    url: str | None
    outlet: str | None
    language: str | None
    summary: str
    published: datetime
    ingested_at: datetime
    classified_at: datetime | None
    labels: Labels | None = Field(description="Null until the classifier has seen the item.")

    @classmethod
    def of(cls, stored: StoredItem) -> ItemOut:
        item = stored.item
        return cls(
            id=item.id,
            feed_id=item.feed_id,
            title=item.title,
            url=item.url,
            outlet=item.outlet,
            language=item.language,
            summary=item.summary,
            published=item.published,
            ingested_at=stored.ingested_at,
            classified_at=stored.classified_at,
            labels=stored.labels,
        )


class ItemDetail(ItemOut):
    """One item whole: text, labels with their evidence (``labels.matches``), its story."""

    text: str
    authors: list[str]
    tags: list[str]
    updated: datetime | None
    story_id: str | None = Field(default=None, description="Null when in no story.")
    story_items: list[ItemOut] = Field(
        default_factory=list, description="The other items of its story, newest first."
    )

    @classmethod
    def detail(
        cls, stored: StoredItem, story_id: str | None = None, story: Sequence[StoredItem] = ()
    ) -> ItemDetail:
        base = ItemOut.of(stored).model_dump()
        return cls(
            **base,
            text=stored.item.text,
            authors=stored.item.authors,
            tags=stored.item.tags,
            updated=stored.item.updated,
            story_id=story_id,
            story_items=[ItemOut.of(s) for s in story if s.item.id != stored.item.id],
        )


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class Health(BaseModel):
    status: str
    redis_version: str | None = None


class ReadyCheck(BaseModel):
    name: str
    ok: bool
    value: int | None = None
    limit: int | None = None
    detail: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: list[ReadyCheck]


# -- feeds ---------------------------------------------------------------------------------
def _check_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise ValueError(f"is not a valid URL: {e}") from e
    if not host:
        raise ValueError("has no host")
    return value


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64].strip("-")


class FeedIn(BaseModel):
    """A feed to add. ``id`` defaults to a slug of the name, else of the URL's host and path."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://www.khmertimeskh.com/feed/", "name": "Khmer Times"},
            ]
        },
    )

    url: str = Field(max_length=2000)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    id: str | None = Field(default=None, pattern=FEED_ID, max_length=64)
    interval_s: int = Field(default=900, ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)
    fetch_full_text: bool = False
    enabled: bool = True

    _url = field_validator("url")(_check_url)


class FeedPatch(BaseModel):
    """Fields to change; a new URL starts the feed's polling state afresh."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    interval_s: int | None = Field(default=None, ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)
    fetch_full_text: bool | None = None
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value


class FeedHealth(BaseModel):
    url: str = Field(description="The URL polled (after permanent redirects).")
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_status: int | None = None
    consecutive_failures: int = 0
    next_check_at: datetime | None = None
    next_check_reason: str | None = None
    gone: bool = False
    items_new_total: int = 0
    items_seen_total: int = 0


class FeedOut(BaseModel):
    id: str
    url: str
    name: str
    interval_s: int
    fetch_full_text: bool
    enabled: bool
    health: FeedHealth | None = Field(description="Null until the ingestor has seen the feed.")


class FeedList(BaseModel):
    feeds: list[FeedOut]


class PollQueued(BaseModel):
    feed_id: str
    due_at: datetime = Field(description="The scheduler polls it on its first tick after this.")


# -- classify, taxonomy, stories -----------------------------------------------------------
class ClassifyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Cambodia and Laos agree joint border patrols",
                    "text": "Defence ministers met in Vientiane ...",
                }
            ]
        },
    )

    title: str = Field(default="", max_length=2_000)
    text: str = Field(default="", max_length=200_000)


class TaxonomyLabel(BaseModel):
    id: str
    items: int


class Taxonomy(BaseModel):
    topics: list[TaxonomyLabel]
    officials: list[TaxonomyLabel]
    countries: list[TaxonomyLabel]
    organisations: list[TaxonomyLabel]


class StorySource(BaseModel):
    feed_id: str
    outlet: str | None
    item_id: str
    url: str | None


class StoryOut(BaseModel):
    id: str
    title: str = Field(description="The title of its newest item.")
    items: int
    latest: datetime
    sources: list[StorySource]


class StoryPage(BaseModel):
    stories: list[StoryOut]
    next_cursor: str | None


class StoryDetail(StoryOut):
    item_list: list[ItemOut] = Field(description="Its items, newest first.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = None
