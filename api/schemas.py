"""Request and response schemas of the HTTP API (apart from the events on the bus).

Timestamps are RFC 3339 in UTC.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.models import Labels, StoredItem


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
    text: str
    authors: list[str]
    tags: list[str]

    @classmethod
    def detail(cls, stored: StoredItem) -> ItemDetail:
        base = ItemOut.of(stored).model_dump()
        return cls(
            **base,
            text=stored.item.text,
            authors=stored.item.authors,
            tags=stored.item.tags,
        )


class ItemPage(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class Health(BaseModel):
    status: str
    redis_version: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = None
