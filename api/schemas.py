"""Request and response schemas of the HTTP API (apart from the events on the bus).

Timestamps are RFC 3339 in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.alerts import Alert, AlertStatus, Attempt
from core.models import Labels, Match, StoredItem
from core.payloads import ItemPayload, SourcePayload
from core.subscriptions import Digest as DigestSpec
from core.subscriptions import (
    EmailChannel,
    Filter,
    Subscription,
    SubscriptionError,
    WebhookChannel,
    check_secret,
)

FEED_ID = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 7 * 86_400


class ItemLabels(Labels):
    """An item's labels. ``matches`` (the evidence for each label) is left out of list pages
    unless they ask for it (``GET /v1/items?evidence=true``): it is most of an item's labels
    (a real item has ~26 matches). The item itself, its stories and the live stream carry
    it."""

    # Optional here (pydantic allows a subclass to widen a field; mypy does not know that).
    matches: list[Match] | None = Field(  # type: ignore[assignment]
        default=None,
        exclude_if=lambda value: value is None,
        description="Evidence: per label, the rule, the matched text and its span. Absent "
        "from list pages without `evidence=true`.",
    )

    @classmethod
    def of(cls, labels: Labels, *, evidence: bool) -> ItemLabels:
        shown = {name: getattr(labels, name) for name in Labels.model_fields}
        return cls(**{**shown, "matches": labels.matches if evidence else None})


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
    labels: ItemLabels | None = Field(description="Null until the classifier has seen the item.")

    @classmethod
    def of(cls, stored: StoredItem, *, evidence: bool = True) -> ItemOut:
        """``evidence``: with the labels' ``matches`` (list pages leave them out)."""
        item = stored.item
        labels = stored.labels
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
            labels=None if labels is None else ItemLabels.of(labels, evidence=evidence),
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


# -- subscriptions -------------------------------------------------------------------------
SUBSCRIPTION_ID = r"^sub_[0-9a-f]{16}$"
ALERT_ID = r"^(?:al|dg)_[0-9a-z_]{8,40}$"
_EMAIL = r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$"
Label = Annotated[str, Field(min_length=1, max_length=100)]
Word = Annotated[str, Field(min_length=1, max_length=100)]


class WebhookChannelIO(BaseModel):
    """Alerts POSTed to ``url``, signed per Standard Webhooks."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["webhook"] = "webhook"
    url: str = Field(max_length=2000, examples=["https://hooks.example.org/newsmon"])

    _url = field_validator("url")(_check_url)


class EmailChannelIO(BaseModel):
    """Alerts mailed to ``recipients``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["email"] = "email"
    recipients: list[Annotated[str, Field(max_length=254, pattern=_EMAIL)]] = Field(
        min_length=1, max_length=50, examples=[["analyst@example.org"]]
    )


ChannelIO = Annotated[WebhookChannelIO | EmailChannelIO, Field(discriminator="kind")]


class FilterIO(BaseModel):
    """What an item's labels must show; empty lists mean "any" (see the notifier's routing)."""

    model_config = ConfigDict(extra="forbid")
    topics: list[Label] = Field(default_factory=list, max_length=100)
    topics_mode: Literal["any", "all"] = "any"
    officials: list[Label] = Field(default_factory=list, max_length=100)
    countries: list[Label] = Field(default_factory=list, max_length=100)
    relevant_only: bool = False
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    feeds: list[Label] = Field(default_factory=list, max_length=100)
    words: list[Word] = Field(default_factory=list, max_length=100)


def _check_digest(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return DigestSpec.parse(value).spec()
    except SubscriptionError as e:
        raise ValueError(str(e)) from e


def _check_secret(value: str | None) -> str | None:
    return None if value is None else check_secret(value)


def to_channel(channel: WebhookChannelIO | EmailChannelIO) -> WebhookChannel | EmailChannel:
    if isinstance(channel, WebhookChannelIO):
        return WebhookChannel(url=channel.url)
    return EmailChannel(recipients=list(channel.recipients))


def to_filter(f: FilterIO) -> Filter:
    return Filter.model_validate(f.model_dump())


_DIGEST_DOC = "`hourly`, `daily@HH:MM` or `daily@HH:MM/Area/City`; null: instant alerts."


class SubscriptionIn(BaseModel):
    """A subscription to add. The signing secret is generated unless given."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Border security desk",
                    "channel": {"kind": "webhook", "url": "https://hooks.example.org/newsmon"},
                    "filter": {"topics": ["border_security"], "relevant_only": True},
                },
                {
                    "name": "Daily digest",
                    "channel": {"kind": "email", "recipients": ["analyst@example.org"]},
                    "digest": "daily@08:00/Asia/Phnom_Penh",
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    channel: ChannelIO
    filter: FilterIO = Field(default_factory=FilterIO)
    digest: str | None = Field(default=None, max_length=64, description=_DIGEST_DOC)
    enabled: bool = True
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000)
    secret: str | None = Field(
        default=None, max_length=200, description="A `whsec_…` signing secret to use."
    )

    _digest = field_validator("digest")(_check_digest)
    _secret = field_validator("secret")(_check_secret)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class SubscriptionPatch(BaseModel):
    """Fields to change. ``digest: null`` makes alerts instant; ``rate_limit_per_hour: null``
    removes the limit. Re-enabling clears ``disabled_reason``."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"enabled": False}, {"digest": "hourly"}]}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    channel: ChannelIO | None = None
    filter: FilterIO | None = None
    digest: str | None = Field(default=None, max_length=64, description=_DIGEST_DOC)
    enabled: bool | None = None
    rate_limit_per_hour: int | None = Field(default=None, ge=1, le=10_000)

    _digest = field_validator("digest")(_check_digest)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value


class SecretInfo(BaseModel):
    """A signing secret's lifetime; its value is shown only at creation and rotation."""

    created_at: datetime
    expires_at: datetime | None = Field(description="Set while a newer secret overlaps it.")


class SubscriptionOut(BaseModel):
    id: str
    name: str
    channel: ChannelIO
    filter: FilterIO
    digest: str | None = Field(description=_DIGEST_DOC)
    mode: str = Field(description="`instant`, or the digest schedule.")
    enabled: bool
    disabled_reason: str | None
    rate_limit_per_hour: int | None
    secrets: list[SecretInfo] = Field(description="Newest first; values never shown here.")
    created_at: datetime

    @classmethod
    def of(cls, sub: Subscription) -> SubscriptionOut:
        channel: WebhookChannelIO | EmailChannelIO = (
            WebhookChannelIO(url=sub.channel.url)
            if isinstance(sub.channel, WebhookChannel)
            else EmailChannelIO(recipients=list(sub.channel.recipients))
        )
        return cls(
            id=sub.id,
            name=sub.name,
            channel=channel,
            filter=FilterIO.model_validate(sub.filter.model_dump()),
            digest=None if sub.digest is None else sub.digest.spec(),
            mode=sub.mode,
            enabled=sub.enabled,
            disabled_reason=sub.disabled_reason,
            rate_limit_per_hour=sub.rate_limit_per_hour,
            secrets=[
                SecretInfo(created_at=s.created_at, expires_at=s.expires_at) for s in sub.secrets
            ],
            created_at=sub.created_at,
        )


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="The webhook signing secret: shown this once.")


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionOut]


class RotateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"overlap_s": 86400}]}
    )

    overlap_s: int = Field(
        default=86_400, ge=0, le=7 * 86_400, description="How long the old secrets stay valid."
    )
    secret: str | None = Field(
        default=None, max_length=200, description="A `whsec_…` secret to use."
    )

    _secret = field_validator("secret")(_check_secret)


class SecretRotated(BaseModel):
    subscription_id: str
    secret: str = Field(description="The new signing secret: shown this once.")
    previous_valid_until: datetime | None = Field(
        description="Until then requests carry the old signature too; null if none."
    )


class TestQueued(BaseModel):
    __test__ = False  # not a pytest class

    alert_id: str
    subscription_id: str
    status: Literal["pending"] = "pending"
    due_at: datetime = Field(description="The notifier sends it as soon as it sees it due.")


class UnsubscribeInfo(BaseModel):
    subscription_id: str
    name: str
    enabled: bool
    method: Literal["POST"] = "POST"
    body: Literal["List-Unsubscribe=One-Click"] = "List-Unsubscribe=One-Click"


class Unsubscribed(BaseModel):
    subscription_id: str
    enabled: Literal[False] = False


# -- alerts --------------------------------------------------------------------------------
class AttemptOut(BaseModel):
    at: datetime
    channel: Literal["webhook", "email"]
    outcome: Literal["delivered", "retry", "gone", "failed"]
    status: int | None = Field(description="HTTP status, or SMTP reply code.")
    latency_ms: float
    error: str | None
    refused: dict[str, str] = Field(description="Email: refused recipient → SMTP reply.")

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls.model_validate(a.model_dump())


class AlertOut(BaseModel):
    id: str
    kind: Literal["alert", "digest"]
    subscription_id: str
    story_id: str
    status: AlertStatus
    test: bool
    created_at: datetime
    updated_at: datetime
    item: ItemPayload | None = Field(description="The story's first item (alerts).")
    labels: Labels | None
    sources: list[SourcePayload]
    children: list[str] = Field(description="A digest's alerts.")
    attempts: int = Field(description="Attempts in the current delivery run.")
    next_attempt_at: datetime | None
    last_error: str | None
    folded: bool = Field(description="Over the rate limit: sent in the next digest.")

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        return cls.model_validate(a.model_dump(exclude={"event_ids", "period_start", "period_end"}))


class AlertDetail(AlertOut):
    period_start: datetime | None
    period_end: datetime | None
    delivery_attempts: list[AttemptOut] = Field(description="Every attempt, oldest first.")

    @classmethod
    def detail(cls, a: Alert, attempts: Sequence[Attempt]) -> AlertDetail:
        base = AlertOut.of(a).model_dump()
        return cls(
            **base,
            period_start=a.period_start,
            period_end=a.period_end,
            delivery_attempts=[AttemptOut.of(x) for x in attempts],
        )


class AlertPage(BaseModel):
    alerts: list[AlertOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class RedeliveryQueued(BaseModel):
    alert_id: str
    status: Literal["pending"] = "pending"
    due_at: datetime


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = None


# -- live stream ---------------------------------------------------------------------------
class AlertEventOut(BaseModel):
    """The `data` of an `alert` event of `/v1/stream`."""

    type: Literal["alert.created", "alert.delivered", "alert.failed"] = Field(
        description="Created (routed, queued for a digest, a digest, a test alert), or a "
        "delivery run ended."
    )
    at: datetime = Field(description="When the change happened.")
    channel: Literal["webhook", "email"] = Field(description="The subscription's channel kind.")
    status: AlertStatus = Field(description="The alert's status as of this event.")
    attempts: int = Field(description="Attempts of the delivery run as of this event.")
    alert: AlertOut = Field(description="The alert as stored when this event was sent.")
