"""The one backoff: exponential, capped, jittered, and pure (callers pass the random source in)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Attempt ``n`` (1-based) may wait up to ``ceiling(n) = min(cap_s, base_s * factor ** (n - 1))``.

    ``jitter`` is the fraction of each ceiling that is random: the wait is drawn from
    ``[ceiling * (1 - jitter), ceiling]`` (1 is "full jitter", 0 gives exact delays for tests); ``min_s`` is a
    floor so that retries never hammer.
    """

    base_s: float = 0.5
    cap_s: float = 8.0
    factor: float = 2.0
    jitter: float = 1.0
    min_s: float = 0.0

    def __post_init__(self) -> None:
        values = (self.base_s, self.cap_s, self.factor, self.jitter, self.min_s)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("backoff settings must be finite numbers")
        if not 0 <= self.min_s <= self.base_s <= self.cap_s:
            raise ValueError("backoff needs 0 <= min_s <= base_s <= cap_s")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")

    def ceiling(self, attempt: int) -> float:
        # Capped before the power can overflow: attempt counts are unbounded in reconnect loops.
        exponent = min(max(0, attempt - 1), 1024)
        try:
            grown = self.base_s * self.factor**exponent
        except OverflowError:
            grown = math.inf
        return float(min(self.cap_s, grown))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return max(self.min_s, self.ceiling(attempt) * (1 - self.jitter * rand()))

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """An endless stream of waits (attempt 1, 2, ...); the caller decides when to stop."""
        attempt = 1
        while True:
            yield self.delay(attempt, rand)
            attempt += 1
