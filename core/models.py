"""Domain data shared by every role: a news item and the labels the classifier gives it.

Owns: the shape of an item and of its labels, and the stable item id.
Must not: do I/O or import any service package.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LabelKind = Literal["topic", "official", "country", "organisation"]
Field_ = Literal["title", "text"]


def item_id_for(*, guid: str | None = None, url: str | None = None) -> str:
    """Stable id: SHA-256 of the guid when the feed gives one, else of the canonical URL.

    16 hex characters (64 bits) keep keys short while collisions stay negligible for the
    millions of items one installation will ever see.
    """
    basis = (guid or "").strip() or (url or "").strip()
    if not basis:
        raise ValueError("an item needs a guid or a URL to have a stable id")
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Item(BaseModel):
    """One news item after normalisation, before or without classification."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    feed_id: str
    url: str | None = None
    guid: str | None = None
    title: str
    summary: str = ""
    text: str = ""
    html: str = ""  # sanitized HTML of the content, when the feed gives HTML
    authors: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    language: str | None = None
    outlet: str | None = None
    published: datetime
    updated: datetime | None = None

    @field_validator("published", "updated")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)


class Match(BaseModel):
    """Evidence for one label: which rule fired, on what text, where."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: LabelKind
    label: str
    rule: str
    text: str
    field: Field_
    start: int
    end: int


class Labels(BaseModel):
    """The classifier's verdict on one item (see ../shared/taxonomy.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topics: list[str] = Field(default_factory=list)
    officials: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    organisations: list[str] = Field(default_factory=list)
    relevant: bool = False
    score: float = Field(default=0.0, ge=0.0, le=1.0)
    matches: list[Match] = Field(default_factory=list)
    rules_version: str = ""
    story_id: str | None = Field(
        default=None, description="Items reporting one event share it (near-duplicate detection)."
    )


class StoredItem(BaseModel):
    """An item as the store returns it: the item, its labels once classified."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: Item
    labels: Labels | None = None
    classified_at: datetime | None = None
    ingested_at: datetime
