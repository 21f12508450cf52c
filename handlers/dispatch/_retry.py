"""Retry policy as pure functions: which answers are worth another try, and how long to wait before it.

Nothing here sleeps or reads a clock; callers pass ``random`` and the current time in, so tests shorten delays and
check them exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from handlers.common import Backoff

__all__ = [
    "RetryPolicy",
    "delays",
    "is_retryable_status",
    "parse_retry_after",
    "resubmit_delay_ms",
]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How one HTTP call is retried. ``attempts`` counts the first try; ``max_retry_after_s`` bounds how long a
    server's ``Retry-After`` may make us wait (a Lambda has a deadline)."""

    attempts: int = 4
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, cap_s=8.0, min_s=0.05))
    max_retry_after_s: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.max_retry_after_s < 0:
            raise ValueError("max_retry_after_s must not be negative")


def is_retryable_status(status: int) -> bool:
    """429 and 5xx may succeed later; any other 4xx will not."""
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); ``None`` if absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)


def delays(policy: RetryPolicy, rng: random.Random) -> Iterator[float]:
    """The waits between the attempts of one call (``attempts - 1`` of them)."""
    for attempt in range(1, policy.attempts):
        yield policy.backoff.delay(attempt, rng.random)


def resubmit_delay_ms(attempt: int, backoff: Backoff) -> int:
    """How long after its last change a job that ended its ``attempt``-th submission badly waits before the
    reconciler submits it again. No jitter: the reconciler runs on a schedule, which spreads resubmissions anyway,
    and a deterministic delay makes "not yet" decisions repeatable."""
    return int(backoff.ceiling(attempt) * 1000)
