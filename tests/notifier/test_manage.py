"""CLI-style options to a subscription and back."""

from __future__ import annotations

import pytest

from core.subscriptions import SubscriptionError
from notifier.manage import build, describe
from tests.notifier.helpers import T0


def test_build_and_describe():
    sub = build(
        name=None,
        webhook="https://hooks.example/x",
        emails=[],
        now=T0,
        topics=["border_security"],
        countries=["KH"],
        relevant_only=True,
        min_score=0.4,
        digest="daily@07:00/Asia/Phnom_Penh",
    )
    shown = describe(sub, show_secret=True)
    assert shown["mode"] == "daily@07:00/Asia/Phnom_Penh"
    assert shown["secret"].startswith("whsec_")
    assert "secret" not in describe(sub)


@pytest.mark.parametrize(
    "kw",
    [
        {"webhook": None, "emails": []},
        {"webhook": "https://a.example", "emails": ["a@b.org"]},
        {"webhook": None, "emails": ["not-an-address"]},
        {"webhook": "https://a.example", "emails": [], "min_score": 2.0},
        {"webhook": "https://a.example", "emails": [], "digest": "weekly"},
    ],
)
def test_bad_options(kw):
    with pytest.raises(SubscriptionError):
        build(name="x", now=T0, **kw)
