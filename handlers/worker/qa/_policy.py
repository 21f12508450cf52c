"""The QA policy across a job's attempts: record each attempt's verdict, and decide whether the job is done, runs
again with new seeds (``retry``), or fails with ``qa_failed``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

from handlers.contract import ErrorCode, JobError, JobQa, OutputItem, QaAttempt, QaOptions, QaPolicy, QaVerdict
from handlers.worker.qa._job import attempt_verdict, qa_error
from handlers.worker.qa._reseed import reseeded
from handlers.workflow import BoundWorkflow

__all__ = ["QaAttempts", "QaFailed"]

logger = logging.getLogger("handlers.worker.qa")


class QaFailed(Exception):
    """Outputs failed their checks under policy ``fail`` (or ``retry``, out of attempts)."""

    code: ClassVar[ErrorCode] = ErrorCode.QA_FAILED
    retryable: ClassVar[bool] = False

    def __init__(self, qa: JobQa) -> None:
        self.qa = qa
        super().__init__(qa_error(qa).message)

    def to_job_error(self, job_id: str | None = None) -> JobError:
        return qa_error(self.qa).model_copy(update={"job_id": job_id})


class QaAttempts:
    def __init__(self, options: QaOptions) -> None:
        self.options = options
        self.attempts: list[QaAttempt] = []

    def after(self, items: Sequence[OutputItem], bound: BoundWorkflow) -> BoundWorkflow | None:
        """Record the attempt that made ``items`` with ``bound``; returns the workflow to run again (new seeds) or
        ``None`` when the job is done. Raises :class:`QaFailed`."""
        if not self.options.enabled:
            return None
        self.attempts.append(attempt_verdict(len(self.attempts) + 1, items, bound.seeds))
        if self.attempts[-1].verdict is not QaVerdict.FAIL or self.options.policy is QaPolicy.REPORT:
            return None
        again = reseeded(bound) if self.options.policy is QaPolicy.RETRY else None
        if again is None or len(self.attempts) > self.options.max_retries:
            summary = self.summary
            assert summary is not None
            raise QaFailed(summary)
        logger.info("outputs failed QA (attempt %d): running again with new seeds", len(self.attempts))
        return again

    @property
    def summary(self) -> JobQa | None:
        if not self.attempts:
            return None
        return JobQa(verdict=self.attempts[-1].verdict, policy=self.options.policy, attempts=self.attempts)
