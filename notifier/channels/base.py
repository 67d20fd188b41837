"""What every channel's attempt returns.

Owns: ``Outcome`` and ``SendResult``. Must not: do I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # try again later (after Retry-After when the receiver gave one)
    GONE = "gone"  # webhook 410: disable the subscription
    FAILED = "failed"  # final: never retried


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status: int | None
    latency_ms: float
    error: str | None = None
    retry_after: float | None = None
    refused: dict[str, str] = field(default_factory=dict)  # email: recipient → SMTP reply
