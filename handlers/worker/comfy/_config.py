"""The ComfyUI client's limits and retry policy: typed, finite, and pure."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["Backoff", "ComfyLimits", "backoff_delays"]


def _positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, not {value!r}")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``initial``, then ``initial * factor**n``, capped at ``maximum``.

    ``jitter`` is the fraction of each delay that is randomised (0 in tests, so delays are exact).
    """

    initial: float = 0.25
    factor: float = 2.0
    maximum: float = 5.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        _positive("initial", self.initial)
        _positive("maximum", self.maximum)
        if not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError("factor must be a finite number >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")


def backoff_delays(policy: Backoff, rand: Callable[[], float] = random.random) -> Iterator[float]:
    """An endless stream of delays (seconds); the caller decides when to stop (deadline, attempts)."""
    delay = policy.initial
    while True:
        spread = delay * policy.jitter
        yield delay - spread + 2 * spread * rand()
        delay = min(delay * policy.factor, policy.maximum)


@dataclass(frozen=True, slots=True)
class ComfyLimits:
    """Every timeout and size the client uses. All finite; "wait forever" cannot be expressed."""

    connect_timeout: float = 5.0
    #: Per HTTP read; /object_info on a big install takes seconds, a /view chunk much less.
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    pool_timeout: float = 10.0
    max_connections: int = 10
    ws_open_timeout: float = 10.0
    #: run_prompt waits this long for the socket before queueing without it (history polls then cover).
    socket_wait: float = 3.0
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    #: One WebSocket message: previews from SaveImageWebsocket can be full-size PNGs.
    ws_max_message_bytes: int = 64 * 1024 * 1024
    #: Messages buffered per followed prompt before the follower falls back to /history.
    max_buffered_messages: int = 10_000
    #: /history is polled this often while the socket is up, to catch what it missed...
    history_poll_interval: float = 5.0
    #: ...and this often while it is down, or while the prompt waits in the queue.
    history_poll_interval_blind: float = 0.5
    #: How long ComfyUI may stay unreachable while a prompt is followed before ComfyUIUnavailable is raised.
    unavailable_grace: float = 30.0
    #: How long the interrupt + queue delete of a cancelled prompt may take before it is abandoned.
    abort_timeout: float = 5.0
    #: /view is written to disk in chunks of this size.
    view_chunk_bytes: int = 1024 * 1024
    reconnect: Backoff = field(default_factory=Backoff)
    #: wait_ready polls /system_stats with this backoff until its deadline.
    ready: Backoff = field(default_factory=lambda: Backoff(initial=0.1, maximum=1.0))

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout",
            "read_timeout",
            "write_timeout",
            "pool_timeout",
            "ws_open_timeout",
            "socket_wait",
            "ws_ping_interval",
            "ws_ping_timeout",
            "history_poll_interval",
            "history_poll_interval_blind",
            "abort_timeout",
            "unavailable_grace",
        ):
            _positive(name, getattr(self, name))
        for name in ("max_connections", "ws_max_message_bytes", "max_buffered_messages", "view_chunk_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
