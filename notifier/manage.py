"""Managing subscriptions from the command line (and, later, the API): flags to a
subscription, a subscription to printable data.

Owns: turning ``newsmon subscriptions add`` options into a validated ``Subscription`` and
showing one (secrets shown once, at creation; masked afterwards). Must not: parse argv or
print; the runner's CLI does that.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from core.subscriptions import (
    EmailChannel,
    Filter,
    Subscription,
    SubscriptionError,
    WebhookChannel,
    new_subscription,
)


def build(
    *,
    name: str | None,
    webhook: str | None,
    emails: Sequence[str],
    now: datetime,
    topics: Sequence[str] = (),
    topics_mode: Literal["any", "all"] = "any",
    officials: Sequence[str] = (),
    countries: Sequence[str] = (),
    feeds: Sequence[str] = (),
    words: Sequence[str] = (),
    relevant_only: bool = False,
    min_score: float = 0.0,
    digest: str | None = None,
    rate_limit: int | None = None,
    secret: str | None = None,
) -> Subscription:
    """A new subscription from CLI-style options; ``SubscriptionError`` says what is wrong."""
    if bool(webhook) == bool(emails):
        raise SubscriptionError("give either --webhook URL or --email ADDR (repeatable)")
    try:
        channel: WebhookChannel | EmailChannel = (
            WebhookChannel(url=webhook) if webhook else EmailChannel(recipients=list(emails))
        )
        f = Filter(
            topics=list(topics),
            topics_mode=topics_mode,
            officials=list(officials),
            countries=list(countries),
            feeds=list(feeds),
            words=list(words),
            relevant_only=relevant_only,
            min_score=min_score,
        )
        return new_subscription(
            name=name or (webhook or ", ".join(emails)),
            channel=channel,
            now=now,
            filter=f,
            digest=digest,
            rate_limit_per_hour=rate_limit,
            secret=secret,
        )
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SubscriptionError(f"{where}: {err['msg']}") from e


def describe(sub: Subscription, *, show_secret: bool = False) -> dict[str, Any]:
    """Plain data for ``--json`` and tables; the signing secret only when asked."""
    out: dict[str, Any] = {
        "id": sub.id,
        "name": sub.name,
        "channel": sub.channel.model_dump(),
        "filter": sub.filter.model_dump(),
        "mode": sub.mode,
        "enabled": sub.enabled,
        "disabled_reason": sub.disabled_reason,
        "rate_limit_per_hour": sub.rate_limit_per_hour,
        "created_at": sub.created_at.isoformat(),
    }
    if show_secret:
        out["secret"] = sub.secrets[0].value
    else:
        out["secrets"] = [s.value[:10] + "…" for s in sub.secrets]
    return out
