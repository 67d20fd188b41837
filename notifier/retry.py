"""When to try a failed delivery again (pure).

The schedule follows the Standard Webhooks recommendation ("Retry schedule" in
https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the failed attempt, each with ±``JITTER``
so that receivers coming back up are not hit by every sender at once. A Retry-After (429,
503; RFC 9110 §10.2.3) replaces the scheduled delay, capped at ``MAX_RETRY_AFTER_S``.

Owns: the retry schedule. Must not: read a clock or draw randomness itself (both are passed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

SCHEDULE_S: Final[tuple[float, ...]] = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER: Final = 0.1
MAX_RETRY_AFTER_S: Final = 36000.0
SMTP_SCHEDULE_S: Final[tuple[float, ...]] = (60, 300, 1800, 7200, 18000, 36000)


def next_delay(
    attempts: int,
    *,
    retry_after: float | None = None,
    rand: Callable[[], float],
    schedule: Sequence[float] = SCHEDULE_S,
) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones, or None: give up.

    ``rand`` returns a float in [0, 1) (``random.random`` in production).
    """
    if attempts < 1 or attempts > len(schedule):
        return None
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER_S)
    base = schedule[attempts - 1]
    return base * (1 + JITTER * (2 * rand() - 1))
