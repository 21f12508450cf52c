"""Progress of a model fetch: rich bars (one per file and one overall) on a terminal, else plain lines at most
every few seconds per file (container logs), and a summary table at the end."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from handlers.image._fetch import FetchResult, FetchStatus
from handlers.image._lock import ModelPin

__all__ = ["LineProgress", "summary", "terminal_progress"]


def _mb(count: int) -> str:
    return f"{count / 1e6:,.1f} MB"


class LineProgress:
    """One line per file when it starts, every ``interval_s`` while it runs, and when it ends."""

    def __init__(self, out: TextIO = sys.stderr, interval_s: float = 5.0, count: int = 0) -> None:
        self.out = out
        self.interval_s = interval_s
        self.count = count
        self.finished = 0
        self._state: dict[str, tuple[int, int | None, float]] = {}

    def start(self, model: ModelPin, total: int | None, done: int) -> None:
        self._state[model.id] = (done, total, time.monotonic())
        resumed = f", resuming at {_mb(done)}" if done else ""
        size = _mb(total) if total is not None else "unknown size"
        print(f"fetching {model.id} ({size}{resumed})", file=self.out, flush=True)

    def advance(self, model: ModelPin, count: int) -> None:
        done, total, last = self._state.get(model.id, (0, None, time.monotonic()))
        done += count
        now = time.monotonic()
        if now - last >= self.interval_s:
            share = f" ({100 * done / total:.0f}%)" if total else ""
            print(f"  {model.id}: {_mb(done)}{share}", file=self.out, flush=True)
            last = now
        self._state[model.id] = (done, total, last)

    def finish(self, result: FetchResult) -> None:
        self.finished += 1
        overall = f"[{self.finished}/{self.count}] " if self.count else ""
        print(f"{overall}{result.status.value} {result.model.id}", file=self.out, flush=True)


class _RichProgress:
    def __init__(self, progress: object, overall: object) -> None:
        self.progress = progress
        self.overall = overall
        self.tasks: dict[str, object] = {}

    def start(self, model: ModelPin, total: int | None, done: int) -> None:
        task = self.tasks.get(model.id)
        if task is None:
            self.tasks[model.id] = self.progress.add_task(model.file, total=total, completed=done)  # type: ignore[attr-defined]
        else:
            self.progress.reset(task, total=total, completed=done)  # type: ignore[attr-defined]

    def advance(self, model: ModelPin, count: int) -> None:
        self.progress.advance(self.tasks[model.id], count)  # type: ignore[attr-defined]

    def finish(self, result: FetchResult) -> None:
        self.progress.advance(self.overall, 1)  # type: ignore[attr-defined]


def terminal_progress(count: int) -> tuple[object, _RichProgress] | None:
    """A rich progress display (context manager, reporter) when rich is installed and stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    try:
        from rich.progress import (  # noqa: PLC0415  (optional: the local extra, not the worker image)
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )
    except ImportError:
        return None
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=False
    )
    overall = progress.add_task("all files", total=count)
    return progress, _RichProgress(progress, overall)


def summary(results: Sequence[FetchResult]) -> str:
    """One line per file, then the counts; failures say why."""
    lines = []
    for result in results:
        extra = f" ({_mb(result.bytes)}{', resumed' if result.resumed else ''})" if result.bytes else ""
        error = f": {result.error}" if result.error else ""
        lines.append(f"{result.status.value:>10}  {result.model.id}{extra}{error}")
    counts = {status: sum(r.status is status for r in results) for status in FetchStatus}
    lines.append(", ".join(f"{n} {status.value}" for status, n in counts.items() if n) or "nothing to fetch")
    return "\n".join(lines)
