"""Every Redis key, stream and consumer-group name newsmon uses, in one place.

Subscriptions and alerts (the notifier's, listed and changed by the API too):
- ``nm:subs``: hash, subscription id → the subscription (JSON).
- ``nm:alert:{id}``: hash with ``data`` (the alert, JSON); ``nm:alert:{id}:attempts``: list of
  attempt records (JSON), oldest first.
- ``nm:alerts``: sorted set of every alert id by creation time (epoch s), for listing;
  ``nm:alerts:sub:{sub_id}``: the same per subscription.
- ``nm:alert:story:{sub_id}:{story_id}``: the alert that subscription has for that story.
- ``nm:notifier:event:{event_id}``: an ``item.classified`` event already routed.
- ``nm:deliveries:due``: sorted set, alert id → when its next attempt is due (epoch s): the
  delivery queue. A claimed delivery is pushed a lease ahead, so a crashed sender's delivery
  comes back; the API queues a test alert or a redelivery by adding it here.
- ``nm:digest:{sub_id}``: sorted set of alert ids waiting for the subscription's next digest.
- ``nm:rate:{sub_id}:{hour}``: instant alerts sent in that UTC hour (rate limit).
- ``nm:stream:alerts:dead``: dead-lettered (exhausted or refused) alerts.
- ``nm:stream:alert-events``: ``alert.*`` events, written in the transaction of the change
  they report (an outbox); read by the API's live stream.

Owns: naming. Must not: talk to Redis.
"""

from __future__ import annotations

PREFIX = "nm"

# Streams (events between roles)
STREAM_ITEMS = f"{PREFIX}:stream:items"  # item.ingested / item.updated → classifier
STREAM_CLASSIFIED = f"{PREFIX}:stream:classified"  # item.classified → notifier, API
# alert.created / alert.delivered / alert.failed → API (its live stream). Not
# ``nm:stream:alerts``: that name's dead-letter stream would be ``DEAD`` below.
STREAM_ALERT_EVENTS = f"{PREFIX}:stream:alert-events"
# Approximate cap (XADD MAXLEN ~) of every stream unless NEWSMON_STREAM_MAXLEN says otherwise,
# and of the dead-letter streams always.
STREAM_MAXLEN = 100_000

# Consumer groups
GROUP_CLASSIFIER = "classifier"
GROUP_NOTIFIER = "notifier"


def dead_letter(stream: str) -> str:
    """The dead-letter stream that receives poison entries from ``stream``."""
    return f"{stream}:dead"


# Item store
def item_key(item_id: str) -> str:
    return f"{PREFIX}:item:{item_id}"


def alias_key(kind: str, digest: str) -> str:
    """Maps a guid or canonical URL (by ``item_id_for`` digest) to the item stored for it."""
    return f"{PREFIX}:alias:{kind}:{digest}"


INDEX_ALL = f"{PREFIX}:idx:all"
INDEX_RELEVANT = f"{PREFIX}:idx:relevant"
STATS = f"{PREFIX}:stats"


def index_key(kind: str, value: str) -> str:
    """Time index of the items having ``kind`` = ``value`` (topic, official, country, feed)."""
    return f"{PREFIX}:idx:{kind}:{value}"


# Feeds (ingestor)
FEEDS = f"{PREFIX}:feeds"  # hash: feed id → definition (JSON)
FEEDS_DUE = f"{PREFIX}:feeds:due"  # sorted set: feed id → next check (epoch seconds)


def feed_state_key(feed_id: str) -> str:
    return f"{PREFIX}:feed:state:{feed_id}"


def feed_lease_key(feed_id: str) -> str:
    return f"{PREFIX}:feed:lease:{feed_id}"


def host_slot_key(host: str) -> str:
    return f"{PREFIX}:host:slot:{host}"


STREAM_COMMANDS = f"{PREFIX}:stream:commands"  # poll-now requests from the API / CLI
GROUP_INGESTOR = "ingestor"


# Subscriptions and alerts (notifier; read and queued by the API)
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
