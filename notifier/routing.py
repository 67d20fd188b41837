"""Alert routing (pure): which subscriptions get an alert for a classified item.

One alert per subscription and **story**: the first item of a story that matches a
subscription creates the alert; a later item of the same story (another outlet's report, by
the classifier's ``story_id``; without one, the item is its own story) adds itself as a
source to the existing alert instead of alerting again. An item that is already a source
of the subscription's alert for its story does nothing: so an updated item re-alerts only
when its labels *newly* match (it matched before → it is already a source → nothing new).

Owns: the filter semantics and the routing decision. Must not: do I/O, read a clock or
import the Redis, HTTP or SMTP libraries; ``now`` and the existing state are arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from core.models import Labels
from core.subscriptions import Filter, Subscription


@dataclass(frozen=True)
class RoutedItem:
    """What routing needs to know about a classified item."""

    item_id: str
    feed_id: str
    labels: Labels
    title: str = ""
    text: str = ""  # summary and body: searched by ``Filter.words``
    story_id: str | None = None

    @property
    def story(self) -> str:
        return self.story_id or self.item_id


@dataclass(frozen=True)
class ExistingAlert:
    """The alert a subscription already has for the item's story, and its sources."""

    alert_id: str
    item_ids: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class NewAlert:
    subscription_id: str
    story_id: str


@dataclass(frozen=True)
class AddSource:
    subscription_id: str
    alert_id: str


Decision = NewAlert | AddSource


@lru_cache(maxsize=1024)
def _word(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word.casefold())}(?!\w)")


def matches(f: Filter, item: RoutedItem) -> bool:
    """Every given criterion holds (AND across criteria; "any" inside a list, except
    ``topics`` with ``topics_mode="all"``)."""
    labels = item.labels
    if f.relevant_only and not labels.relevant:
        return False
    if labels.score < f.min_score:
        return False
    if f.topics:
        wanted, have = set(f.topics), set(labels.topics)
        ok = wanted <= have if f.topics_mode == "all" else bool(wanted & have)
        if not ok:
            return False
    if f.officials and not set(f.officials) & set(labels.officials):
        return False
    if f.countries and not set(f.countries) & set(labels.countries):
        return False
    if f.feeds and item.feed_id not in f.feeds:
        return False
    if f.words:
        haystack = f"{item.title}\n{item.text}".casefold()
        if not any(_word(w).search(haystack) for w in f.words):
            return False
    return True


def route(
    item: RoutedItem,
    subscriptions: Iterable[Subscription],
    existing: Mapping[str, ExistingAlert],
) -> list[Decision]:
    """The alerts to create and the alerts that gain ``item`` as a source.

    ``existing`` maps a subscription id to its alert for ``item.story`` (absent: none yet).
    Disabled subscriptions get nothing.
    """
    decisions: list[Decision] = []
    for sub in subscriptions:
        if not sub.enabled or not matches(sub.filter, item):
            continue
        current = existing.get(sub.id)
        if current is None:
            decisions.append(NewAlert(sub.id, item.story))
        elif item.item_id not in current.item_ids:
            decisions.append(AddSource(sub.id, current.alert_id))
    return decisions
