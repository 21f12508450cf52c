"""Terminal output shared by the CLI commands: one rich console, and a progress display with a bar per job."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["JobBars", "ProgressView", "console", "error_console"]


def console() -> Console:
    from rich.console import Console  # noqa: PLC0415 - rich is in the ``local`` extra

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def error_console() -> Console:
    from rich.console import Console  # noqa: PLC0415

    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    # Node titles and labels are data: "[x]" in them must print as is, not be read as rich markup.
    from rich.markup import escape  # noqa: PLC0415

    return escape(text)


@dataclass(frozen=True, slots=True)
class ProgressView:
    """One job's progress as shown: overall percent, the node running, and its sampler step."""

    percent: float
    node_title: str | None = None
    step: float | None = None
    steps: float | None = None
    status: str | None = None
    #: The worker's estimate of the time left (progress is weighted by expected cost, so it moves evenly).
    eta_ms: float | None = None

    def detail(self) -> str:
        parts = []
        if self.status:
            parts.append(self.status)
        if self.node_title:
            parts.append(self.node_title)
        if self.step is not None and self.steps:
            parts.append(f"step {int(self.step)}/{int(self.steps)}")
        if self.eta_ms is not None and self.eta_ms > 0:
            parts.append(f"about {max(1, round(self.eta_ms / 1000))}s left")
        return " - ".join(parts)


class JobBars:
    """``with JobBars(console) as bars: bars.add(key, label); bars.update(key, view); bars.finish(key, ok, word)``."""

    def __init__(self, out: Console) -> None:
        from rich.console import RenderableType  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            Progress,
            SpinnerColumn,
            Task,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text  # noqa: PLC0415

        class StateSpinner(SpinnerColumn):
            """The spinner while a job runs; a mark (✓ ✗) once it ended, whichever way."""

            def render(self, task: Task) -> RenderableType:
                mark = task.fields.get("mark")
                return Text.from_markup(mark) if mark else super().render(task)

        self._progress: Progress = Progress(
            StateSpinner(),
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=out,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._labels: dict[str, str] = {}

    def add(self, key: str, label: str) -> None:
        self._tasks[key] = self._progress.add_task(_escape(label), total=100.0, detail="in queue", mark="")
        self._labels[key] = label

    def label(self, key: str) -> str:
        return self._labels.get(key, key)

    def update(self, key: str, view: ProgressView) -> None:
        percent = max(0.0, min(view.percent, 100.0))
        self._progress.update(self._tasks[key], completed=percent, detail=_escape(view.detail()))

    def log(self, message: str) -> None:
        """A line printed above the bars (they keep redrawing below it)."""
        self._progress.console.print(message, markup=False, highlight=False)

    def finish(self, key: str, ok: bool, word: str, note: str = "") -> None:
        """End the bar: ``word`` says how the job ended ("done", "failed", "cancelled"), once; ``note`` adds a
        detail ("3 outputs")."""
        task = self._tasks[key]
        style = "green" if ok else "red"
        detail = f"[{style}]{_escape(word)}[/]" + (f" - {_escape(note)}" if note else "")
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        if ok:
            self._progress.update(task, completed=100.0, detail=detail, mark=mark)
        else:
            self._progress.update(task, detail=detail, mark=mark)
        self._progress.stop_task(task)

    def __enter__(self) -> JobBars:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
