"""Subscriptions: who wants which alerts, where, and how often; and their Redis repository.

A subscription has a name, one channel (a webhook URL, or email recipients), a filter over an
item's labels (see ``routing``), a mode (instant, or a digest: hourly, or daily at a local
time in a time zone), an enabled flag, an optional rate limit (instant alerts per hour; the
excess is folded into the next digest) and its webhook signing secrets.

Secrets follow Standard Webhooks (https://www.standardwebhooks.com/, "Signature scheme"):
``whsec_`` + base64 of 24 random bytes. Rotation keeps the old secret valid for an overlap
during which every request carries both signatures.

Shared by the notifier (which routes and delivers) and the API (which manages them).

Owns: the subscription model, parsing of ``--digest`` specs, secret generation and
rotation, and CRUD in Redis (``nm:subs``). Must not: route items or send anything.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.exceptions import WatchError

from core import keys
from core.errors import NewsmonError

SECRET_PREFIX = "whsec_"
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
_DIGEST = re.compile(r"^daily@(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)(?:/(?P<tz>[A-Za-z0-9_+\-/]+))?$")
_EMAIL = re.compile(r"^[^@\s<>\r\n]+@[^@\s<>\r\n]+\.[^@\s<>\r\n]+$")


class SubscriptionError(NewsmonError):
    """A subscription is invalid or unknown."""


def new_secret() -> str:
    """A fresh ``whsec_`` secret (24 random bytes, base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def check_secret(value: str) -> str:
    if not value.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    try:
        raw = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except ValueError as e:
        raise ValueError("a signing secret is whsec_ followed by base64") from e
    if not 24 <= len(raw) <= 64:  # Standard Webhooks: between 24 and 64 bytes
        raise ValueError("a signing secret holds 24 to 64 bytes")
    return value


class WebhookChannel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["webhook"] = "webhook"
    url: str

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("a webhook URL is an absolute http(s) URL")
        return value


class EmailChannel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["email"] = "email"
    recipients: list[str] = Field(min_length=1)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"not an email address: {address!r}")
        return value


Channel = Annotated[WebhookChannel | EmailChannel, Field(discriminator="kind")]


class Filter(BaseModel):
    """What an item's labels must show. Empty lists mean "any"."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    topics: list[str] = Field(default_factory=list)
    topics_mode: Literal["any", "all"] = "any"
    officials: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    relevant_only: bool = False
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    feeds: list[str] = Field(default_factory=list)
    words: list[str] = Field(default_factory=list)


class Digest(BaseModel):
    """A digest schedule: every hour on the hour, or every day at ``at`` in ``tz``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    every: Literal["hourly", "daily"]
    at: str | None = None  # HH:MM, daily only
    tz: str = "UTC"

    @classmethod
    def parse(cls, spec: str) -> Digest:
        """``hourly`` or ``daily@HH:MM[/Area/City]``."""
        if spec == "hourly":
            return cls(every="hourly")
        m = _DIGEST.match(spec)
        if m is None:
            raise SubscriptionError(f"digest must be hourly or daily@HH:MM[/TZ], not {spec!r}")
        tz = m["tz"] or "UTC"
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise SubscriptionError(f"unknown time zone {tz!r}") from e
        return cls(every="daily", at=f"{m['h']}:{m['m']}", tz=tz)

    def spec(self) -> str:
        if self.every == "hourly":
            return "hourly"
        return f"daily@{self.at}" + ("" if self.tz == "UTC" else f"/{self.tz}")


class Secret(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    value: str
    created_at: datetime
    expires_at: datetime | None = None  # set when a newer secret replaced it

    def valid_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


class Subscription(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str = Field(min_length=1, max_length=200)
    channel: Channel
    filter: Filter = Field(default_factory=Filter)
    digest: Digest | None = None  # None: instant
    enabled: bool = True
    disabled_reason: str | None = None
    rate_limit_per_hour: int | None = Field(default=None, ge=1)
    secrets: list[Secret] = Field(default_factory=list)  # newest first
    unsubscribe_token: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    created_at: datetime

    @property
    def mode(self) -> str:
        return "instant" if self.digest is None else self.digest.spec()

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with now: the newest, plus older ones still in their overlap."""
        return [s.value for s in self.secrets if s.valid_at(now)]


def new_subscription(
    *,
    name: str,
    channel: WebhookChannel | EmailChannel,
    now: datetime,
    filter: Filter | None = None,
    digest: str | Digest | None = None,
    rate_limit_per_hour: int | None = None,
    secret: str | None = None,
    enabled: bool = True,
) -> Subscription:
    """A validated new subscription with a fresh id (and secret unless one is given)."""
    schedule = Digest.parse(digest) if isinstance(digest, str) else digest
    try:
        value = check_secret(secret) if secret else new_secret()
    except ValueError as e:
        raise SubscriptionError(str(e)) from e
    return Subscription(
        id="sub_" + secrets.token_hex(8),
        name=name,
        channel=channel,
        filter=filter or Filter(),
        digest=schedule,
        enabled=enabled,
        rate_limit_per_hour=rate_limit_per_hour,
        secrets=[Secret(value=value, created_at=now)],
        created_at=now,
    )


class SubscriptionStore:
    """Subscriptions in the ``nm:subs`` hash. The Redis client is injected."""

    def __init__(self, redis: Any) -> None:
        self.redis: Any = redis

    async def put(self, sub: Subscription) -> None:
        await self.redis.hset(keys.SUBSCRIPTIONS, sub.id, sub.model_dump_json())

    async def get(self, sub_id: str) -> Subscription | None:
        raw = await self.redis.hget(keys.SUBSCRIPTIONS, sub_id)
        return None if raw is None else Subscription.model_validate_json(raw)

    async def list_all(self) -> list[Subscription]:
        rows = await self.redis.hgetall(keys.SUBSCRIPTIONS)
        subs = [Subscription.model_validate_json(v) for v in rows.values()]
        return sorted(subs, key=lambda s: (s.created_at, s.id))

    async def update(
        self, sub_id: str, change: Callable[[Subscription], Subscription]
    ) -> Subscription | None:
        """Read-modify-write one subscription under WATCH (a concurrent change, say the
        notifier disabling it on a 410, is never overwritten); None when it does not exist."""
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(keys.SUBSCRIPTIONS)
                    raw = await pipe.hget(keys.SUBSCRIPTIONS, sub_id)
                    if raw is None:
                        await pipe.unwatch()
                        return None
                    new = change(Subscription.model_validate_json(raw))
                    pipe.multi()
                    pipe.hset(keys.SUBSCRIPTIONS, sub_id, new.model_dump_json())
                    await pipe.execute()
                    return new
                except WatchError:
                    continue

    async def remove(self, sub_id: str) -> bool:
        return bool(await self.redis.hdel(keys.SUBSCRIPTIONS, sub_id))

    async def set_enabled(self, sub_id: str, enabled: bool, reason: str | None = None) -> bool:
        sub = await self.get(sub_id)
        if sub is None:
            return False
        changed = {"enabled": enabled, "disabled_reason": None if enabled else reason}
        await self.put(sub.model_copy(update=changed))
        return True

    async def rotate_secret(
        self,
        sub_id: str,
        now: datetime,
        *,
        overlap: timedelta = DEFAULT_ROTATION_OVERLAP,
        secret: str | None = None,
    ) -> str:
        """Add a new secret; the current ones stay valid for ``overlap``. Returns the new one."""
        sub = await self.get(sub_id)
        if sub is None:
            raise SubscriptionError(f"no subscription {sub_id}")
        value = check_secret(secret) if secret else new_secret()
        kept = [
            s if s.expires_at is not None else s.model_copy(update={"expires_at": now + overlap})
            for s in sub.secrets
            if s.valid_at(now)
        ]
        fresh = Secret(value=value, created_at=now)
        await self.put(sub.model_copy(update={"secrets": [fresh, *kept]}))
        return value
