"""When is a feed due: a fetch's outcome plus the feed's state in, the next state out.

The rules, with their constants:

- Success (200) or 304: the next check is the feed's interval (floor ``MIN_INTERVAL_S``)
  stretched, never shortened, by what the server declared: the freshness lifetime
  (``Cache-Control: max-age``, else ``Expires`` minus ``Date``; RFC 9111 §4.2.1), RSS
  ``<ttl>`` and ``sy:updatePeriod``. A declared lifetime counts up to ``MAX_STRETCH_S``, so a
  bogus year-long max-age cannot silence a feed. Failures are reset, ``last_error`` cleared.
- 429/503 (``RetryLater``): the next check is max(Retry-After, interval), Retry-After
  counting up to ``MAX_RETRY_AFTER_S``; without Retry-After, the failure backoff.
- Failure: exponential backoff, interval × 2^(failures-1) up to ``MAX_BACKOFF_S`` (or the
  interval when that is longer). A feed is never given up on: it is always scheduled.
- 410 (``Gone``): ``gone`` is set and the next check pushed ``GONE_RECHECK`` away; callers
  skip gone feeds (``is_due`` is False for them).
- A permanent redirect (301/308) reported by the fetcher replaces the state's ``url``.
- Every delay is jittered by ±``JITTER`` (from the injected ``rand``) so feeds spread out,
  except that a server's Retry-After is never undercut.

Owns: ``FeedState`` (JSON-serialisable, stored by the scheduler), the ``Outcome`` variants
and the scheduling arithmetic. Must not: do I/O, read the clock or a random source (``now``
and ``rand`` are arguments), or parse feeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from ingestor.feeds import MIN_INTERVAL_S, FeedDef, format_interval

MAX_STRETCH_S: Final = 24 * 3600  # server hints (max-age, Expires, ttl, updatePeriod) cap
MAX_RETRY_AFTER_S: Final = 6 * 3600
MAX_BACKOFF_S: Final = 12 * 3600
JITTER: Final = 0.10  # ± fraction of the delay
GONE_RECHECK: Final = timedelta(days=3650)
MAX_WARNINGS: Final = 20
MAX_TEXT: Final = 500  # characters kept of one warning or error
# RFC 9111 §1.2.2: a delta-seconds value too large to represent is taken as 2^31.
_DELTA_SECONDS_MAX: Final = 2**31


# -- outcomes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fetched:
    """A 2xx with a body that was parsed. ``permanent_redirect`` is the new URL after a
    301/308 on the way; ``ttl_seconds``/``update_period_seconds`` come from the feed."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    ttl_seconds: int | None = None
    update_period_seconds: int | None = None
    new_items: int = 0
    seen_items: int = 0
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None
    warnings: Sequence[str] = ()


@dataclass(frozen=True)
class NotModified:
    """304: the stored representation is still current."""

    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Gone:
    """410: the feed was removed for good."""


@dataclass(frozen=True)
class RetryLater:
    """429 or 503: the server asked us to slow down (``retry_after_s`` from Retry-After)."""

    status: int
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Failed:
    """Anything else that went wrong: a network error, a 5xx, an unparseable body."""

    error: str
    status: int | None = None


Outcome = Fetched | NotModified | Gone | RetryLater | Failed


# -- state ----------------------------------------------------------------------------------
class FeedState(BaseModel):
    """What we remember about one feed between polls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    next_check_at: datetime
    next_check_reason: str
    etag: str | None = None
    last_modified: str | None = None
    consecutive_failures: int = Field(default=0, ge=0)
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: int | None = None
    items_seen_total: int = Field(default=0, ge=0)
    items_new_total: int = Field(default=0, ge=0)
    gone: bool = False
    warnings: list[str] = Field(default_factory=list)


def initial_state(feed: FeedDef, now: datetime) -> FeedState:
    """A feed never polled: due now."""
    return FeedState(url=feed.url, next_check_at=_utc(now), next_check_reason="new feed")


def is_due(state: FeedState, now: datetime) -> bool:
    """True when the feed should be fetched at ``now``; never for a gone feed."""
    return not state.gone and state.next_check_at <= _utc(now)


def next_state(
    state: FeedState | None,
    feed: FeedDef,
    outcome: Outcome,
    *,
    now: datetime,
    rand: Callable[[], float],
) -> FeedState:
    """The state after ``outcome``, including when to check next and why."""
    now = _utc(now)
    current = state if state is not None else initial_state(feed, now)
    interval = max(feed.interval_s, MIN_INTERVAL_S)
    match outcome:
        case Fetched():
            return _after_fetched(current, outcome, interval, now, rand)
        case NotModified():
            return _after_not_modified(current, outcome, interval, now, rand)
        case Gone():
            return current.model_copy(
                update={
                    "gone": True,
                    "last_status": 410,
                    "last_error": "gone (410)",
                    "last_error_at": now,
                    "next_check_at": now + GONE_RECHECK,
                    "next_check_reason": "gone (410)",
                }
            )
        case RetryLater():
            return _after_retry_later(current, outcome, interval, now, rand)
        case Failed():
            failures = current.consecutive_failures + 1
            delay, reason = backoff(interval, failures)
            return current.model_copy(
                update={
                    "consecutive_failures": failures,
                    "last_error": _clip(outcome.error),
                    "last_error_at": now,
                    "last_status": outcome.status,
                    "next_check_at": now + _seconds(jittered(delay, rand)),
                    "next_check_reason": reason,
                }
            )
    raise TypeError(f"unknown outcome {outcome!r}")  # pragma: no cover


def _after_fetched(
    state: FeedState, outcome: Fetched, interval: int, now: datetime, rand: Callable[[], float]
) -> FeedState:
    delay, reason = fresh_delay(
        interval,
        lifetime=parse_cache_lifetime(outcome.headers, now),
        ttl_s=outcome.ttl_seconds,
        update_period_s=outcome.update_period_seconds,
    )
    return state.model_copy(
        update={
            **_success(now, outcome.status),
            "url": outcome.permanent_redirect or state.url,
            # The new representation's validators replace the old ones, even when absent: an
            # old ETag no longer identifies what we hold (RFC 9110 §8.8).
            "etag": outcome.etag,
            "last_modified": outcome.last_modified,
            "items_seen_total": state.items_seen_total + max(outcome.seen_items, 0),
            "items_new_total": state.items_new_total + max(outcome.new_items, 0),
            "warnings": [_clip(w) for w in list(outcome.warnings)[:MAX_WARNINGS]],
            "next_check_at": now + _seconds(jittered(delay, rand)),
            "next_check_reason": reason,
        }
    )


def _after_not_modified(
    state: FeedState,
    outcome: NotModified,
    interval: int,
    now: datetime,
    rand: Callable[[], float],
) -> FeedState:
    delay, reason = fresh_delay(interval, lifetime=parse_cache_lifetime(outcome.headers, now))
    # RFC 9111 §4.3.4: a 304 updates the stored response's header fields with its own, so a
    # validator it carries replaces ours; one it omits is kept.
    etag = _header(outcome.headers, "etag") or state.etag
    last_modified = _header(outcome.headers, "last-modified") or state.last_modified
    return state.model_copy(
        update={
            **_success(now, 304),
            "etag": etag,
            "last_modified": last_modified,
            "next_check_at": now + _seconds(jittered(delay, rand)),
            "next_check_reason": reason,
        }
    )


def _after_retry_later(
    state: FeedState,
    outcome: RetryLater,
    interval: int,
    now: datetime,
    rand: Callable[[], float],
) -> FeedState:
    failures = state.consecutive_failures + 1
    if outcome.retry_after_s is None:
        delay, reason = backoff(interval, failures)
        at = now + _seconds(jittered(delay, rand))
    else:
        # RFC 9110 §10.2.3: the server says how long to wait; honour it (capped), but never
        # poll faster than the feed's own interval, and let jitter only lengthen the wait.
        wait = min(max(outcome.retry_after_s, 0.0), float(MAX_RETRY_AFTER_S))
        shown = f"retry-after {round(wait)}s"
        if wait >= interval:
            delay, reason = wait, shown
        else:
            delay, reason = interval, f"interval {format_interval(interval)} ({shown})"
        at = now + _seconds(max(jittered(delay, rand), wait))
    return state.model_copy(
        update={
            "consecutive_failures": failures,
            "last_error": f"HTTP {outcome.status}",
            "last_error_at": now,
            "last_status": outcome.status,
            "next_check_at": at,
            "next_check_reason": reason,
        }
    )


def _success(now: datetime, status: int) -> dict[str, object]:
    return {
        "consecutive_failures": 0,
        "last_error": None,
        "last_error_at": None,
        "last_success_at": now,
        "last_status": status,
        "gone": False,
    }


# -- the arithmetic -------------------------------------------------------------------------
def fresh_delay(
    interval: int,
    *,
    lifetime: tuple[int, str] | None = None,
    ttl_s: int | None = None,
    update_period_s: int | None = None,
) -> tuple[float, str]:
    """The wait after a success: the longest of the interval and the server's hints, each
    hint counting up to ``MAX_STRETCH_S``; ties go to the interval."""
    interval = max(interval, MIN_INTERVAL_S)
    best: tuple[float, str] = (interval, f"interval {format_interval(interval)}")
    hints: list[tuple[int, str]] = [lifetime] if lifetime is not None else []
    if ttl_s:
        hints.append((ttl_s, "ttl"))
    if update_period_s:
        hints.append((update_period_s, "update-period"))
    for seconds, source in hints:
        capped = min(seconds, MAX_STRETCH_S)
        if capped > best[0]:
            note = " (capped)" if seconds > MAX_STRETCH_S else ""
            best = (capped, f"{source} {format_interval(capped)}{note}")
    return best


def backoff(interval: int, failures: int) -> tuple[float, str]:
    """interval × 2^(failures-1), at most ``MAX_BACKOFF_S`` (or the interval if longer)."""
    interval = max(interval, MIN_INTERVAL_S)
    n = max(failures, 1)
    delay = min(interval * 2 ** min(n - 1, 40), max(MAX_BACKOFF_S, interval))
    noun = "failure" if n == 1 else "failures"
    return float(delay), f"backoff after {n} {noun}"


def jittered(delay: float, rand: Callable[[], float]) -> float:
    """``delay`` scaled by a factor in [1 - JITTER, 1 + JITTER] drawn from ``rand`` ∈ [0, 1]."""
    r = min(max(rand(), 0.0), 1.0)
    return delay * (1.0 + JITTER * (2.0 * r - 1.0))


# -- HTTP caching headers -------------------------------------------------------------------
def parse_cache_lifetime(headers: Mapping[str, str], now: datetime) -> tuple[int, str] | None:
    """The freshness lifetime the response declares, in seconds, and where it came from.

    RFC 9111 §4.2.1: ``max-age`` first, else ``Expires`` minus ``Date`` (``now`` when Date is
    missing or invalid). ``s-maxage`` is for shared caches and we are a private one, so it is
    ignored; ``no-cache``/``no-store`` only forbid reuse without revalidation, which we never
    do, so they do not shorten the interval. None when nothing is declared.
    """
    max_age = _max_age(_header(headers, "cache-control"))
    if max_age is not None:
        return max_age, "max-age"
    expires_raw = _header(headers, "expires")
    if expires_raw is None:
        return None
    expires = _http_date(expires_raw)
    if expires is None:
        return 0, "expires"  # RFC 9111 §5.3: an invalid Expires (e.g. "0") means expired
    date = _http_date(_header(headers, "date") or "") or _utc(now)
    seconds = int((expires - date).total_seconds())
    return max(seconds, 0), "expires"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (RFC 9110 §10.2.3: delay-seconds or an
    HTTP-date); None when absent or invalid. For the fetcher to fill ``RetryLater``."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(min(int(text), _DELTA_SECONDS_MAX))
    when = _http_date(text)
    if when is None:
        return None
    return max((when - _utc(now)).total_seconds(), 0.0)


def _max_age(cache_control: str | None) -> int | None:
    """The first valid ``max-age`` directive (RFC 9111 §4.2.1: with duplicates, use the
    first); directive names are case-insensitive and a quoted value is accepted (§5.2)."""
    if not cache_control:
        return None
    for directive in cache_control.split(","):
        name, _, value = directive.partition("=")
        if name.strip().lower() != "max-age":
            continue
        value = value.strip().strip('"')
        if value.isdigit():
            return min(int(value), _DELTA_SECONDS_MAX)
        return None  # an invalid max-age: nothing usable declared by it
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (RFC 9110 §5.1) on any mapping."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


def _http_date(value: str) -> datetime | None:
    """An HTTP-date (RFC 9110 §5.6.7) as aware UTC, or None when it cannot be parsed."""
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return _utc(parsed)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _seconds(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
