"""Alerts into the public webhook payloads (pure).

Owns: mapping a stored ``Alert`` (and a digest's alerts) to ``payloads`` and to the exact
bytes that are signed and sent. Must not: do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.alerts import Alert
from core.payloads import (
    AlertCreated,
    AlertData,
    DigestCreated,
    DigestData,
    EvidencePayload,
    LabelsPayload,
    StoryPayload,
    SubscriptionRef,
)
from core.subscriptions import Subscription


def alert_data(alert: Alert, sub: Subscription) -> AlertData:
    if alert.item is None or alert.labels is None:
        raise ValueError(f"alert {alert.id} has no item")
    return AlertData(
        alert_id=alert.id,
        subscription=SubscriptionRef(id=sub.id, name=sub.name),
        created_at=alert.created_at,
        item=alert.item,
        labels=LabelsPayload.of(alert.labels),
        evidence=[EvidencePayload.of(m) for m in alert.labels.matches],
        story=StoryPayload(id=alert.story_id, sources=alert.sources),
    )


def payload(
    alert: Alert, sub: Subscription, children: Sequence[Alert] = ()
) -> AlertCreated | DigestCreated:
    """The payload of an alert, or of a digest given its alerts. Its ``timestamp`` is the
    alert's creation time, so a retry sends the same body unless a source was added."""
    if alert.kind == "alert":
        return AlertCreated(timestamp=alert.created_at, data=alert_data(alert, sub))
    return DigestCreated(
        timestamp=alert.created_at,
        data=DigestData(
            digest_id=alert.id,
            subscription=SubscriptionRef(id=sub.id, name=sub.name),
            period_start=alert.period_start or alert.created_at,
            period_end=alert.period_end or alert.created_at,
            alerts=[alert_data(child, sub) for child in children],
        ),
    )


def body(alert: Alert, sub: Subscription, children: Sequence[Alert] = ()) -> bytes:
    return payload(alert, sub, children).model_dump_json().encode()
