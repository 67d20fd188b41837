"""Subscriptions: digest specs, secrets and their rotation, the Redis repository."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from core.subscriptions import (
    Digest,
    EmailChannel,
    Filter,
    SubscriptionError,
    SubscriptionStore,
    WebhookChannel,
    new_subscription,
)
from tests.notifier.helpers import T0


@pytest.mark.parametrize(
    ("spec", "every", "at", "tz"),
    [
        ("hourly", "hourly", None, "UTC"),
        ("daily@07:30", "daily", "07:30", "UTC"),
        ("daily@18:05/Asia/Phnom_Penh", "daily", "18:05", "Asia/Phnom_Penh"),
    ],
)
def test_digest_specs(spec, every, at, tz):
    d = Digest.parse(spec)
    assert (d.every, d.at, d.tz) == (every, at, tz)
    assert Digest.parse(d.spec()) == d


@pytest.mark.parametrize("spec", ["daily", "daily@25:00", "weekly", "daily@07:30/Mars/Base"])
def test_bad_digest_specs(spec):
    with pytest.raises(SubscriptionError):
        Digest.parse(spec)


def test_channels_are_validated():
    with pytest.raises(ValidationError):
        WebhookChannel(url="ftp://x")
    with pytest.raises(ValidationError):
        EmailChannel(recipients=["a@b.org\r\nBcc: evil@x.org"])
    with pytest.raises(SubscriptionError):
        new_subscription(
            name="x", channel=WebhookChannel(url="https://a.org"), now=T0, secret="whsec_abc"
        )


async def test_store_roundtrip_rotation_and_remove(r):
    store = SubscriptionStore(r)
    sub = new_subscription(
        name="ops",
        channel=EmailChannel(recipients=["a@example.org"]),
        now=T0,
        filter=Filter(topics=["border_security"], min_score=0.5),
        digest="daily@08:00/Asia/Vientiane",
        rate_limit_per_hour=10,
    )
    await store.put(sub)
    assert await store.get(sub.id) == sub
    assert [s.id for s in await store.list_all()] == [sub.id]
    old = sub.secrets[0].value
    new = await store.rotate_secret(sub.id, T0, overlap=timedelta(hours=1))
    rotated = await store.get(sub.id)
    assert rotated.signing_secrets(T0) == [new, old]  # both during the overlap
    assert rotated.signing_secrets(T0 + timedelta(hours=1)) == [new]
    assert await store.set_enabled(sub.id, False, "410")
    assert (await store.get(sub.id)).disabled_reason == "410"
    assert await store.remove(sub.id)
    assert await store.get(sub.id) is None
