"""Every Redis key the notifier uses (``nm:sub*``, ``nm:alert*``, ``nm:notifier:*``).

Layout:
- ``nm:subs``: hash, subscription id → the subscription (JSON).
- ``nm:alert:{id}``: hash with ``data`` (the alert, JSON); ``nm:alert:{id}:attempts``: list of
  attempt records (JSON), oldest first.
- ``nm:alerts``: sorted set of every alert id by creation time (epoch s), for listing;
  ``nm:alerts:sub:{sub_id}``: the same per subscription.
- ``nm:alert:story:{sub_id}:{story_id}``: the alert that subscription has for that story.
- ``nm:notifier:event:{event_id}``: an ``item.classified`` event already routed.
- ``nm:deliveries:due``: sorted set, alert id → when its next attempt is due (epoch s). A
  claimed delivery is pushed a lease ahead, so a crashed sender's delivery comes back.
- ``nm:digest:{sub_id}``: sorted set of alert ids waiting for the subscription's next digest.
- ``nm:rate:{sub_id}:{hour}``: instant alerts sent in that UTC hour (rate limit).
- ``nm:stream:alerts:dead``: dead-lettered (exhausted or refused) alerts.

Owns: naming. Must not: talk to Redis.
"""

from __future__ import annotations

from core.keys import PREFIX

SUBSCRIPTIONS = f"{PREFIX}:subs"
ALERTS = f"{PREFIX}:alerts"
DUE = f"{PREFIX}:deliveries:due"
DEAD = f"{PREFIX}:stream:alerts:dead"
EVENT_TTL_S = 86_400 * 30
STORY_TTL_S = 86_400 * 14  # a story older than this alerts afresh


def alert(alert_id: str) -> str:
    return f"{PREFIX}:alert:{alert_id}"


def attempts(alert_id: str) -> str:
    return f"{PREFIX}:alert:{alert_id}:attempts"


def alerts_of(sub_id: str) -> str:
    return f"{PREFIX}:alerts:sub:{sub_id}"


def story(sub_id: str, story_id: str) -> str:
    return f"{PREFIX}:alert:story:{sub_id}:{story_id}"


def event_seen(event_id: str) -> str:
    return f"{PREFIX}:notifier:event:{event_id}"


def digest_queue(sub_id: str) -> str:
    return f"{PREFIX}:digest:{sub_id}"


def rate(sub_id: str, hour: int) -> str:
    return f"{PREFIX}:rate:{sub_id}:{hour}"
