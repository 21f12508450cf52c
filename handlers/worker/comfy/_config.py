"""The ComfyUI client's limits and retry policy (the shared :class:`~handlers.common.Backoff`): typed and finite."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from handlers.common import Backoff

__all__ = ["ComfyLimits"]


def _positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, not {value!r}")


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
    reconnect: Backoff = field(default_factory=lambda: Backoff(base_s=0.25, cap_s=5.0, jitter=0.1))
    #: wait_ready polls /system_stats with this backoff until its deadline.
    ready: Backoff = field(default_factory=lambda: Backoff(base_s=0.1, cap_s=1.0, jitter=0.1))

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
