"""The decider on a controllable clock: next poll times, backoff, caching headers, state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor.decider import (
    GONE_RECHECK,
    JITTER,
    MAX_BACKOFF_S,
    MAX_RETRY_AFTER_S,
    MAX_STRETCH_S,
    MAX_WARNINGS,
    Failed,
    FeedState,
    Fetched,
    Gone,
    NotModified,
    RetryLater,
    initial_state,
    is_due,
    next_state,
    parse_cache_lifetime,
    parse_retry_after,
)
from ingestor.feeds import FeedDef

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HTTP_NOW = "Sat, 01 Mar 2025 12:00:00 GMT"
FEED = FeedDef(url="https://www.khmertimeskh.com/feed/", name="Khmer Times", interval_s=900)


def no_jitter() -> float:
    return 0.5


def constant(value: float) -> Callable[[], float]:
    return lambda: value


def step(outcome, state=None, *, feed=FEED, now=NOW, rand=no_jitter) -> FeedState:
    return next_state(state, feed, outcome, now=now, rand=rand)


def delay(state: FeedState, now: datetime = NOW) -> float:
    return (state.next_check_at - now).total_seconds()


# -- start ----------------------------------------------------------------------------------
def test_initial_state_is_due_now():
    state = initial_state(FEED, NOW)
    assert state.next_check_at == NOW
    assert state.next_check_reason == "new feed"
    assert state.url == FEED.url
    assert is_due(state, NOW)
    assert not is_due(state, NOW - timedelta(seconds=1))


def test_state_round_trips_through_json():
    state = step(Fetched(etag='"x"', new_items=2, seen_items=5, warnings=["w"]))
    assert FeedState.model_validate_json(state.model_dump_json()) == state


# -- success and 304: interval stretched by the server's hints ------------------------------
@pytest.mark.parametrize(
    ("headers", "ttl", "period", "seconds", "reason"),
    [
        ({}, None, None, 900, "interval 15m"),
        ({"Cache-Control": "max-age=3600"}, None, None, 3600, "max-age 1h"),
        ({"cache-control": 'public, MAX-AGE="7200"'}, None, None, 7200, "max-age 2h"),
        ({"Cache-Control": "max-age=60"}, None, None, 900, "interval 15m"),  # never shortens
        ({"Cache-Control": "no-cache, max-age=0"}, None, None, 900, "interval 15m"),
        ({"Cache-Control": "no-store"}, None, None, 900, "interval 15m"),
        ({"Cache-Control": "s-maxage=7200"}, None, None, 900, "interval 15m"),  # shared only
        ({"Cache-Control": "max-age=31536000"}, None, None, MAX_STRETCH_S, "max-age 1d (capped)"),
        ({"Cache-Control": "max-age=3600, max-age=60"}, None, None, 3600, "max-age 1h"),
        ({"Cache-Control": "max-age=soon"}, None, None, 900, "interval 15m"),
        (
            {"Date": HTTP_NOW, "Expires": "Sat, 01 Mar 2025 14:00:00 GMT"},
            None,
            None,
            7200,
            "expires 2h",
        ),
        (  # Expires minus Date, not minus our clock: the server's clock may be off
            {"Date": "Sat, 01 Mar 2025 11:00:00 GMT", "Expires": "Sat, 01 Mar 2025 12:30:00 GMT"},
            None,
            None,
            5400,
            "expires 1h30m",
        ),
        (  # max-age wins over Expires (RFC 9111 §5.3)
            {"Cache-Control": "max-age=1800", "Expires": "Sat, 01 Mar 2025 18:00:00 GMT"},
            None,
            None,
            1800,
            "max-age 30m",
        ),
        ({"Expires": "0"}, None, None, 900, "interval 15m"),
        ({}, 1800, None, 1800, "ttl 30m"),
        ({}, None, 7200, 7200, "update-period 2h"),
        ({"Cache-Control": "max-age=3600"}, 1800, 7200, 7200, "update-period 2h"),
        ({}, 10 * 86_400, None, MAX_STRETCH_S, "ttl 1d (capped)"),
    ],
)
def test_success_stretches_the_interval(headers, ttl, period, seconds, reason):
    state = step(Fetched(headers=headers, ttl_seconds=ttl, update_period_seconds=period))
    assert delay(state) == seconds
    assert state.next_check_reason == reason


def test_304_stretches_by_max_age_too():
    state = step(NotModified(headers={"Cache-Control": "max-age=3600"}))
    assert delay(state) == 3600
    assert state.next_check_reason == "max-age 1h"
    assert state.last_status == 304


def test_304_keeps_etag_and_last_modified():
    first = step(Fetched(etag='"v1"', last_modified="Fri, 28 Feb 2025 10:00:00 GMT"))
    later = NOW + timedelta(minutes=15)
    second = step(NotModified(), first, now=later)
    assert second.etag == '"v1"'
    assert second.last_modified == "Fri, 28 Feb 2025 10:00:00 GMT"
    assert second.last_success_at == later
    assert delay(second, later) == 900


def test_304_with_a_new_validator_updates_it():
    first = step(Fetched(etag='"v1"', last_modified="Fri, 28 Feb 2025 10:00:00 GMT"))
    second = step(NotModified(headers={"ETag": '"v2"'}), first)
    assert second.etag == '"v2"'
    assert second.last_modified == "Fri, 28 Feb 2025 10:00:00 GMT"


def test_a_200_without_validators_drops_the_old_ones():
    first = step(Fetched(etag='"v1"', last_modified="Fri, 28 Feb 2025 10:00:00 GMT"))
    second = step(Fetched(), first)
    assert second.etag is None
    assert second.last_modified is None


def test_success_counts_items_and_keeps_capped_warnings():
    state = step(Fetched(new_items=3, seen_items=10, warnings=["w"] * 50))
    state = step(Fetched(new_items=1, seen_items=10, warnings=["x" * 2000]), state)
    assert state.items_new_total == 4
    assert state.items_seen_total == 20
    assert len(state.warnings) == 1 and len(state.warnings[0]) <= 500
    assert len(step(Fetched(warnings=["w"] * 50)).warnings) == MAX_WARNINGS


@pytest.mark.parametrize(("interval", "expected"), [(60, 60), (3600, 3600)])
def test_interval_floor(interval, expected):
    feed = FEED.model_copy(update={"interval_s": interval})
    assert delay(step(Fetched(), feed=feed)) == expected
    # a FeedDef built around validation still gets the floor
    raw = FeedDef.model_construct(**{**FEED.model_dump(), "interval_s": 5})
    assert delay(step(Fetched(), feed=raw)) == 60


# -- 429/503 --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "retry_after", "seconds", "reason"),
    [
        (429, 7200, 7200, "retry-after 7200s"),
        (503, 120, 900, "interval 15m (retry-after 120s)"),
        (429, 10**9, MAX_RETRY_AFTER_S, f"retry-after {MAX_RETRY_AFTER_S}s"),
        (503, None, 900, "backoff after 1 failure"),
    ],
)
def test_retry_later(status, retry_after, seconds, reason):
    state = step(RetryLater(status=status, retry_after_s=retry_after))
    assert delay(state) == seconds
    assert state.next_check_reason == reason
    assert state.last_status == status
    assert state.consecutive_failures == 1
    assert state.last_error == f"HTTP {status}"


def test_retry_after_is_never_undercut_by_jitter():
    state = step(RetryLater(status=429, retry_after_s=7200), rand=lambda: 0.0)
    assert delay(state) == 7200
    state = step(RetryLater(status=429, retry_after_s=7200), rand=lambda: 1.0)
    assert delay(state) == pytest.approx(7200 * (1 + JITTER))


def test_retry_later_without_header_backs_off_like_failures():
    state = None
    for _ in range(3):
        state = step(RetryLater(status=503), state)
    assert delay(state) == 900 * 4
    assert state.next_check_reason == "backoff after 3 failures"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("Sat, 01 Mar 2025 12:05:00 GMT", 300.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
        ("99999999999", float(2**31)),
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, NOW) == seconds


# -- failures -------------------------------------------------------------------------------
def test_exponential_backoff_sequence_and_cap():
    state, delays, reasons = None, [], []
    for _ in range(10):
        state = step(Failed("connection refused"), state)
        delays.append(delay(state))
        reasons.append(state.next_check_reason)
    expected = [900 * 2**i for i in range(6)] + [MAX_BACKOFF_S] * 4  # 900·2^6 > 12 h
    assert delays == expected
    assert reasons[0] == "backoff after 1 failure"
    assert reasons[2] == "backoff after 3 failures"
    assert state.consecutive_failures == 10
    assert state.last_error == "connection refused"
    assert state.last_error_at == NOW


def test_never_gives_up():
    state = FeedState(
        url=FEED.url, next_check_at=NOW, next_check_reason="x", consecutive_failures=10**6
    )
    state = step(Failed("still down", status=500), state)
    assert state.consecutive_failures == 10**6 + 1
    assert delay(state) == MAX_BACKOFF_S
    assert state.last_status == 500
    assert not state.gone


def test_backoff_never_undercuts_a_long_interval():
    feed = FEED.model_copy(update={"interval_s": 2 * MAX_BACKOFF_S})
    assert delay(step(Failed("x"), feed=feed)) == 2 * MAX_BACKOFF_S
    state = step(Failed("x"), step(Failed("x"), feed=feed), feed=feed)
    assert delay(state) == 2 * MAX_BACKOFF_S


@pytest.mark.parametrize("recovery", [Fetched(new_items=1), NotModified()])
def test_recovery_resets_failures_and_clears_the_error(recovery):
    state = None
    for _ in range(4):
        state = step(Failed("timeout"), state)
    state = step(recovery, state)
    assert state.consecutive_failures == 0
    assert state.last_error is None
    assert state.last_error_at is None
    assert state.last_success_at == NOW
    assert delay(state) == 900
    assert state.next_check_reason == "interval 15m"


# -- 410 and redirects ----------------------------------------------------------------------
def test_gone():
    state = step(Gone(), step(Fetched(etag='"v"')))
    assert state.gone
    assert state.next_check_reason == "gone (410)"
    assert state.last_status == 410
    assert state.next_check_at == NOW + GONE_RECHECK
    assert not is_due(state, NOW + GONE_RECHECK * 2)


def test_a_gone_feed_that_answers_again_is_back():
    state = step(Fetched(), step(Gone()))
    assert not state.gone
    assert is_due(state, NOW + timedelta(seconds=900))


def test_permanent_redirect_updates_url():
    new = "https://www.khmertimeskh.com/rss/"
    state = step(Fetched(status=200, permanent_redirect=new))
    assert state.url == new
    assert step(Fetched(), state).url == new  # kept afterwards
    assert step(NotModified(), state).url == new


# -- jitter ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "outcome",
    [Fetched(), NotModified(headers={"Cache-Control": "max-age=3600"}), Failed("x")],
)
def test_jitter_bounds(outcome):
    base = delay(step(outcome))
    low = delay(step(outcome, rand=lambda: 0.0))
    high = delay(step(outcome, rand=lambda: 1.0))
    assert low == pytest.approx(base * (1 - JITTER))
    assert high == pytest.approx(base * (1 + JITTER))


# -- parse_cache_lifetime -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Cache-Control": "no-cache"}, None),
        ({"Cache-Control": "private, max-age=600"}, (600, "max-age")),
        ({"Expires": "Sat, 01 Mar 2025 13:00:00 GMT"}, (3600, "expires")),  # no Date: now
        ({"Expires": "Sat, 01 Mar 2025 13:00:00 GMT", "Date": "garbage"}, (3600, "expires")),
        ({"Expires": "Sat, 01 Mar 2025 11:00:00 GMT", "Date": HTTP_NOW}, (0, "expires")),
        ({"Expires": "-1"}, (0, "expires")),
    ],
)
def test_parse_cache_lifetime(headers, expected):
    assert parse_cache_lifetime(headers, NOW) == expected


# -- properties -----------------------------------------------------------------------------
outcomes = st.one_of(
    st.builds(
        Fetched,
        headers=st.sampled_from(
            [
                {},
                {"Cache-Control": "max-age=999999999"},
                {"Cache-Control": "max-age=30"},
                {"Expires": "Sun, 01 Mar 2026 12:00:00 GMT"},
                {"Expires": "0"},
            ]
        ),
        ttl_seconds=st.none() | st.integers(min_value=0, max_value=10**9),
        update_period_seconds=st.none() | st.integers(min_value=0, max_value=10**9),
        new_items=st.integers(min_value=0, max_value=100),
        seen_items=st.integers(min_value=0, max_value=100),
    ),
    st.builds(NotModified, headers=st.sampled_from([{}, {"Cache-Control": "max-age=86400"}])),
    st.builds(Gone),
    st.builds(
        RetryLater,
        status=st.sampled_from([429, 503]),
        retry_after_s=st.none() | st.floats(min_value=0, max_value=1e12),
    ),
    st.builds(Failed, error=st.text(max_size=20)),
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(outcomes, st.integers(min_value=0, max_value=10**6), st.floats(0, 1)),
        min_size=1,
        max_size=30,
    ),
    interval=st.integers(min_value=60, max_value=MAX_STRETCH_S // 2),
)
def test_next_check_is_always_ahead_and_bounded(steps, interval):
    feed = FEED.model_copy(update={"interval_s": interval})
    cap = max(MAX_STRETCH_S, MAX_BACKOFF_S, MAX_RETRY_AFTER_S, interval) * (1 + JITTER)
    state: FeedState | None = None
    now = NOW
    for outcome, gap, r in steps:
        now += timedelta(seconds=gap)
        state = next_state(state, feed, outcome, now=now, rand=constant(r))
        ahead = (state.next_check_at - now).total_seconds()
        assert ahead > 0
        assert state.consecutive_failures >= 0
        if state.gone:
            assert not is_due(state, now)
        else:
            assert ahead <= cap + 1e-6
            assert is_due(state, state.next_check_at)
