"""The public, versioned JSON bodies newsmon POSTs to webhooks.

Shaped as Standard Webhooks recommends ("Payload structure": ``type``, ``timestamp``,
``data``), plus ``version``: a receiver can refuse a version it does not know. Adding an
optional field keeps the version; renaming or removing one bumps it.

    {"type": "alert.created", "version": 1, "timestamp": "...", "data": {
        "alert_id", "subscription": {"id", "name"}, "created_at",
        "item": {"id", "feed_id", "title", "url", "outlet", "published", "summary"},
        "labels": {"topics", "officials", "countries", "organisations", "relevant", "score"},
        "evidence": [{"kind", "label", "rule", "text", "field", "start", "end"}],
        "story": {"id", "sources": [{"item_id", "feed_id", "outlet", "title", "url",
                                     "published"}]}}}
    {"type": "digest.created", "version": 1, "timestamp": "...", "data": {
        "digest_id", "subscription": {...}, "period_start", "period_end",
        "alerts": [<alert.created data>, ...]}}

Owns: the payload types (in core: stored alerts hold an item and its sources in these
shapes, and the API shows them). Must not: do I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.models import Item, Labels, Match

PAYLOAD_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ItemPayload(_Model):
    id: str
    feed_id: str
    title: str
    url: str | None = None
    outlet: str | None = None
    published: datetime
    summary: str = ""

    @classmethod
    def of(cls, item: Item) -> ItemPayload:
        summary = item.summary or item.text[:500]
        return cls(
            id=item.id,
            feed_id=item.feed_id,
            title=item.title,
            url=item.url,
            outlet=item.outlet,
            published=item.published,
            summary=summary,
        )


class SourcePayload(_Model):
    item_id: str
    feed_id: str
    outlet: str | None = None
    title: str
    url: str | None = None
    published: datetime

    @classmethod
    def of(cls, item: Item) -> SourcePayload:
        return cls(
            item_id=item.id,
            feed_id=item.feed_id,
            outlet=item.outlet,
            title=item.title,
            url=item.url,
            published=item.published,
        )


class LabelsPayload(_Model):
    topics: list[str] = Field(default_factory=list)
    officials: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    organisations: list[str] = Field(default_factory=list)
    relevant: bool = False
    score: float = 0.0

    @classmethod
    def of(cls, labels: Labels) -> LabelsPayload:
        return cls(
            topics=labels.topics,
            officials=labels.officials,
            countries=labels.countries,
            organisations=labels.organisations,
            relevant=labels.relevant,
            score=labels.score,
        )


class EvidencePayload(_Model):
    kind: str
    label: str
    rule: str
    text: str
    field: str
    start: int
    end: int

    @classmethod
    def of(cls, match: Match) -> EvidencePayload:
        return cls.model_validate(match.model_dump())


class StoryPayload(_Model):
    id: str
    sources: list[SourcePayload]


class SubscriptionRef(_Model):
    id: str
    name: str


class AlertData(_Model):
    alert_id: str
    subscription: SubscriptionRef
    created_at: datetime
    item: ItemPayload
    labels: LabelsPayload
    evidence: list[EvidencePayload]
    story: StoryPayload


class AlertCreated(_Model):
    type: Literal["alert.created"] = "alert.created"
    version: Literal[1] = 1
    timestamp: datetime
    data: AlertData


class DigestData(_Model):
    digest_id: str
    subscription: SubscriptionRef
    period_start: datetime
    period_end: datetime
    alerts: list[AlertData]


class DigestCreated(_Model):
    type: Literal["digest.created"] = "digest.created"
    version: Literal[1] = 1
    timestamp: datetime
    data: DigestData


Payload = AlertCreated | DigestCreated
