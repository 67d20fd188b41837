"""Routing is pure: table-driven cases for the filter and the per-story decision."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import Labels
from core.subscriptions import Filter, WebhookChannel, new_subscription
from notifier.routing import AddSource, ExistingAlert, NewAlert, RoutedItem, matches, route
from tests.notifier.helpers import T0

LAB = Labels(
    topics=["border_security", "joint_exercise"],
    officials=["hun_manet"],
    countries=["KH", "LA"],
    relevant=True,
    score=0.7,
)
ITEM = RoutedItem(
    item_id="i1",
    feed_id="khmertimes",
    labels=LAB,
    title="Border patrols meet",
    text="The Mekong crossing at Stung Treng",
)


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (Filter(), True),
        (Filter(topics=["border_security"]), True),
        (Filter(topics=["trafficking", "border_security"]), True),
        (Filter(topics=["trafficking", "border_security"], topics_mode="all"), False),
        (Filter(topics=["joint_exercise", "border_security"], topics_mode="all"), True),
        (Filter(topics=["trafficking"]), False),
        (Filter(officials=["hun_manet"]), True),
        (Filter(officials=["sonexay_siphandone"]), False),
        (Filter(countries=["TH", "LA"]), True),
        (Filter(countries=["TH"]), False),
        (Filter(relevant_only=True), True),
        (Filter(min_score=0.7), True),
        (Filter(min_score=0.71), False),
        (Filter(feeds=["khmertimes"]), True),
        (Filter(feeds=["vientianetimes"]), False),
        (Filter(words=["mekong"]), True),
        (Filter(words=["patrol"]), False),  # whole words only: "patrols" is another word
        (Filter(words=["Stung Treng"]), True),
        (Filter(topics=["border_security"], officials=["nobody"]), False),  # AND across
    ],
)
def test_filter(f, expected):
    assert matches(f, ITEM) is expected


def test_not_relevant_is_filtered_by_relevant_only():
    item = RoutedItem("i2", "f", LAB.model_copy(update={"relevant": False}))
    assert not matches(Filter(relevant_only=True), item)
    assert matches(Filter(), item)


def _sub(name: str, **kw: Any) -> Any:
    return new_subscription(
        name=name, channel=WebhookChannel(url="https://example.org/h"), now=T0, **kw
    )


def test_route_new_alert_per_subscription_and_story():
    a, b = _sub("a"), _sub("b", filter=Filter(topics=["trafficking"]))
    off = _sub("off", enabled=False)
    item = RoutedItem("i1", "f", LAB, story_id="story-9")
    assert route(item, [a, b, off], {}) == [NewAlert(a.id, "story-9")]


def test_second_source_of_a_story_adds_to_the_existing_alert():
    a = _sub("a")
    item = RoutedItem("i2", "other", LAB, story_id="s")
    existing = {a.id: ExistingAlert("al_1", frozenset({"i1"}))}
    assert route(item, [a], existing) == [AddSource(a.id, "al_1")]


def test_an_item_already_in_the_alert_does_nothing():
    """An updated item whose labels matched before is already a source: no re-alert."""
    a = _sub("a")
    item = RoutedItem("i1", "f", LAB)
    assert route(item, [a], {a.id: ExistingAlert("al_1", frozenset({"i1"}))}) == []


def test_an_updated_item_newly_matching_alerts():
    a = _sub("a", filter=Filter(topics=["joint_exercise"]))
    before = RoutedItem("i1", "f", LAB.model_copy(update={"topics": ["border_security"]}))
    after = RoutedItem("i1", "f", LAB)
    assert route(before, [a], {}) == []
    assert route(after, [a], {}) == [NewAlert(a.id, "i1")]  # no story id: the item is one
