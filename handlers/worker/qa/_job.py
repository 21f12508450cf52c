"""QA and previews of one job's outputs while it runs: started as each output is stored, off the event loop (a
thread each), so they overlap the rest of the prompt and the other uploads; collected before the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from handlers.contract import (
    ErrorCode,
    JobError,
    JobQa,
    OutputItem,
    OutputKind,
    OutputQa,
    PreviewOptions,
    QaAttempt,
    QaFailure,
    QaOptions,
    QaVerdict,
    SeedUsed,
    summarize,
)
from handlers.worker._outputs import ComfyDirs, OutputPathError, collect_node_outputs, resolve_ref
from handlers.worker.qa._checks import check_file
from handlers.worker.qa._expect import expected_for
from handlers.worker.qa._previews import Derived, make_previews
from handlers.worker.qa._verdicts import overall, skipped, with_duplicates, worst

__all__ = ["JobQaRun", "qa_error"]

logger = logging.getLogger("handlers.worker.qa")

_CHECKED = frozenset({OutputKind.IMAGE, OutputKind.ANIMATED, OutputKind.VIDEO, OutputKind.AUDIO})


class JobQaRun:
    """One attempt's QA and previews. ``publish``: uploads a derived file beside its source; ``announce``: tells
    the caller a new output is stored."""

    def __init__(
        self,
        options: QaOptions,
        previews: PreviewOptions,
        graph: Mapping[str, Any],
        *,
        paths: Mapping[str, Path],
        publish: Callable[[OutputItem, Path, Any], Any],
        announce: Callable[[OutputItem], None],
        work_dir: Path,
    ) -> None:
        self.options = options
        self.previews = previews
        self.graph = graph
        self._paths = paths
        self._publish = publish
        self._announce = announce
        self._work_dir = work_dir
        self._checks: dict[Path, asyncio.Future[OutputQa | None]] = {}
        self._previews: dict[Path, asyncio.Future[list[Derived]]] = {}
        self.warnings: list[str] = []

    def _begin(self, path: Path, kind: OutputKind, node_id: str) -> None:
        """Start the checks and the previews of one file (once), each in a thread of its own."""
        if self.options.enabled and path not in self._checks:
            expected = expected_for(self.graph, node_id)
            self._checks[path] = asyncio.ensure_future(
                asyncio.to_thread(check_file, path, kind, expected, self.options.thresholds)
            )
        if self.previews.enabled and path not in self._previews:
            self._previews[path] = asyncio.ensure_future(
                asyncio.to_thread(make_previews, path, kind, self.previews, self._work_dir)
            )

    def ahead(self, node_id: str, ui: Mapping[str, Any], dirs: ComfyDirs, *, include_temp: bool) -> None:
        """A node's files are on this disk and about to upload: start their checks and previews now, so they
        overlap the upload instead of following it."""
        for ref in collect_node_outputs(ui, node_id, include_temp=include_temp).files:
            if ref.kind in _CHECKED:
                with contextlib.suppress(OutputPathError):
                    self._begin(resolve_ref(ref, dirs), ref.kind, node_id)

    async def stored(self, items: Sequence[OutputItem]) -> None:
        """Outputs just stored: their checks run (started here if :meth:`ahead` did not), and their previews are
        uploaded beside them (awaited: the caller runs this in the output's upload task, so the job waits)."""
        files = [(i, self._paths.get(i.sha256 or "")) for i in items if i.role is None and i.sha256]
        for item, path in files:
            if path is not None:
                self._begin(path, item.kind, item.node_id)
        for item, path in files:
            future = self._previews.get(path) if path is not None else None
            if future is None:
                continue
            try:
                derived = await future
            except Exception as exc:  # a preview is a convenience: a file Pillow/PyAV cannot read only costs it
                self.warnings.append(f"no preview for {item.filename}: {exc}")
                continue
            for made in derived:
                try:
                    self._announce(await self._publish(item, made.path, made.role))
                finally:
                    with contextlib.suppress(OSError):
                        made.path.unlink()

    async def verdicts(self, items: Sequence[OutputItem]) -> list[OutputItem]:
        """``items`` with their ``qa`` (near-duplicates across the batch included), once every check is done."""
        results: list[OutputQa | None] = []
        for item in items:
            path = self._paths.get(item.sha256 or "") if item.role is None else None
            future = self._checks.get(path) if path is not None else None
            results.append(await _outcome(future) if future is not None else None)
        sizes = [(i.width, i.height) if i.width and i.height else None for i in items]
        results = with_duplicates(results, self.options.thresholds.duplicate_distance, sizes)
        return [i.model_copy(update={"qa": q}) if q is not None else i for i, q in zip(items, results, strict=True)]

    def cancel(self) -> None:
        for check in self._checks.values():
            check.cancel()
        for preview in self._previews.values():
            preview.cancel()


async def _outcome(future: asyncio.Future[OutputQa | None]) -> OutputQa | None:
    """A check's result; a check that broke (a bug, a decoder crash) is reported as skipped, never fails the job."""
    try:
        return await future
    except Exception as exc:
        logger.exception("a quality check failed to run")
        return overall([skipped("decodes", f"the check could not run: {type(exc).__name__}: {exc}")])


def attempt_verdict(number: int, items: Sequence[OutputItem], seeds: Sequence[SeedUsed]) -> QaAttempt:
    checked = [i for i in items if i.qa is not None]
    failures = [
        QaFailure(node_id=i.node_id, filename=i.filename, s3_uri=i.s3_uri, checks=i.qa.failed())
        for i in checked
        if i.qa is not None and i.qa.verdict is QaVerdict.FAIL
    ]
    return QaAttempt(
        attempt=number,
        verdict=worst([i.qa.verdict for i in checked if i.qa is not None]),
        seeds={f"{s.node_id}.{s.input}": s.value for s in seeds},
        failures=failures,
    )


def qa_error(qa: JobQa) -> JobError:
    """``qa_failed``, naming each failed output and its checks (the last attempt's; all attempts in ``qa``)."""
    last = qa.attempts[-1]
    named = [f"{f.filename or 'node ' + f.node_id} failed {', '.join(f.checks)}" for f in last.failures]
    tries = f" after {len(qa.attempts)} attempts" if len(qa.attempts) > 1 else ""
    message = f"outputs failed the quality checks{tries}: {summarize(named)}"
    return JobError(code=ErrorCode.QA_FAILED, message=message, qa=qa)
