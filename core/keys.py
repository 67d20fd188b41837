"""Every Redis key, stream and consumer-group name newsmon uses, in one place.

Owns: naming. Must not: talk to Redis.
"""

from __future__ import annotations

PREFIX = "nm"

# Streams (events between roles)
STREAM_ITEMS = f"{PREFIX}:stream:items"  # item.ingested / item.updated → classifier
STREAM_CLASSIFIED = f"{PREFIX}:stream:classified"  # item.classified → notifier, API

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
