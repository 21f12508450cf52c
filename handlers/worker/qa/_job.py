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
    OutputQa,
    PreviewOptions,
    QaAttempt,
    QaFailure,
    QaOptions,
    QaVerdict,
    SeedUsed,
    summarize,
)
from handlers.worker.qa._checks import check_file
from handlers.worker.qa._expect import expected_for
from handlers.worker.qa._previews import make_previews
from handlers.worker.qa._verdicts import overall, skipped, with_duplicates, worst

__all__ = ["JobQaRun", "qa_error"]

logger = logging.getLogger("handlers.worker.qa")


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
        self._checks: dict[str, asyncio.Future[OutputQa | None]] = {}
        self.warnings: list[str] = []

    async def stored(self, items: Sequence[OutputItem]) -> None:
        """Outputs just stored: start their checks, then make and upload their previews (awaited: the caller runs
        this in the output's upload task, so the job waits for it)."""
        files = [(i, self._paths.get(i.sha256 or "")) for i in items if i.role is None and i.sha256]
        for item, path in files:
            if path is None or not self.options.enabled or item.sha256 in self._checks:
                continue
            expected = expected_for(self.graph, item.node_id)
            self._checks[item.sha256 or ""] = asyncio.ensure_future(
                asyncio.to_thread(check_file, path, item.kind, expected, self.options.thresholds)
            )
        if not self.previews.enabled:
            return
        for item, path in files:
            if path is None:
                continue
            try:
                derived = await asyncio.to_thread(make_previews, path, item.kind, self.previews, self._work_dir)
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
            future = self._checks.get(item.sha256 or "") if item.role is None else None
            results.append(await _outcome(future) if future is not None else None)
        sizes = [(i.width, i.height) if i.width and i.height else None for i in items]
        results = with_duplicates(results, self.options.thresholds.duplicate_distance, sizes)
        return [i.model_copy(update={"qa": q}) if q is not None else i for i, q in zip(items, results, strict=True)]

    def cancel(self) -> None:
        for future in self._checks.values():
            future.cancel()


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
