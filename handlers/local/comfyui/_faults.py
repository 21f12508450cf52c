"""Fault injection: what the CLI flags and the ``/_emulator/faults`` admin route can make the emulator do wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["FaultError", "Faults"]


class FaultError(ValueError):
    """A fault setting that cannot be applied (unknown key, wrong type, out of range)."""


@dataclass
class Faults:
    """Faults to inject. A node selector is a node id (``"3"``, ``"7:1"``) or a ``class_type`` (``"KSampler"``).

    * ``error_at``: that node fails with ``execution_error`` (``RuntimeError: error_message``); with
      ``error_times``, only that many times (then it runs normally: a transient failure such as running out of VRAM).
    * ``exit_at``: the process dies (``os._exit(exit_code)``) when that node starts; only meaningful when the
      emulator runs as its own process.
    * ``hold_at``: that node waits, after its ``executing`` message, until ``POST /_emulator/release`` or an
      interrupt: lets a test interrupt or inspect a prompt at a known point without racing it.
    * ``black_at``: that node's IMAGE outputs come out all black (the NaN / fp16 VAE failure), for the next
      ``black_times`` runs of it (then it works again: what a QA retry with a new seed needs).
    * ``ws_drop_after``: every WebSocket is closed by the server after it has been sent this many messages.
    * ``history_delay_seconds`` / ``history_delay_calls``: ``/history`` answers ``{}`` for a finished prompt until
      that many seconds have passed since it finished / for that many requests about it.
    """

    error_at: str | None = None
    error_message: str = "Emulated failure (fault injection)"
    error_times: int | None = None
    exit_at: str | None = None
    exit_code: int = 1
    hold_at: str | None = None
    black_at: str | None = None
    black_times: int = 1
    ws_drop_after: int | None = None
    history_delay_seconds: float = 0.0
    history_delay_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def clear(self) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(Faults(), f.name))

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` (all or nothing); ``None`` resets a key to its default."""
        checked: dict[str, Any] = {}
        defaults = Faults()
        for key, value in changes.items():
            if key not in _CHECKS:
                raise FaultError(f"unknown fault {key!r}; known: {', '.join(sorted(_CHECKS))}")
            checked[key] = getattr(defaults, key) if value is None else _CHECKS[key](key, value)
        for key, value in checked.items():
            setattr(self, key, value)

    def take_error(self) -> bool:
        """Whether ``error_at`` fails this time (counting down ``error_times``)."""
        if self.error_times is None:
            return True
        if self.error_times <= 0:
            return False
        self.error_times -= 1
        return True

    @staticmethod
    def matches(selector: str | None, node_id: str, class_type: str) -> bool:
        return selector is not None and selector in (node_id, class_type)


def _selector(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise FaultError(f"{key} must be a node id or a class_type (a non-empty string)")
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FaultError(f"{key} must be a string")
    return value


def _count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FaultError(f"{key} must be an integer >= 0")
    return value


def _exit_code(key: str, value: Any) -> int:
    code = _count(key, value)
    if code > 255:
        raise FaultError(f"{key} must be between 0 and 255")
    return code


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise FaultError(f"{key} must be a finite number of seconds >= 0")
    return float(value)


_CHECKS = {
    "error_at": _selector,
    "error_message": _text,
    "error_times": _count,
    "exit_at": _selector,
    "exit_code": _exit_code,
    "hold_at": _selector,
    "black_at": _selector,
    "black_times": _count,
    "ws_drop_after": _count,
    "history_delay_seconds": _seconds,
    "history_delay_calls": _count,
}
