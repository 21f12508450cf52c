"""An in-memory :class:`JobStore` with the same conditional semantics as the DynamoDB one (tests, local runs)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from handlers.contract import JobRecord, JobState, is_terminal
from handlers.dispatch._errors import RecordExistsError, StaleRecordError

__all__ = ["MemoryJobStore"]


class MemoryJobStore:
    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._records: dict[str, JobRecord] = {}
        self._messages: dict[str, str] = {}
        #: Every successful write, for tests that count writes per job.
        self.writes: list[tuple[str, JobState]] = []

    def _live(self, job_id: str) -> JobRecord | None:
        record = self._records.get(job_id)
        if record is None or record.expires_at * 1000 <= self._clock_ms():
            return None
        return record

    def create(self, record: JobRecord, message: str) -> JobRecord:
        with self._lock:
            existing = self._live(record.job_id)
            if existing is not None:
                raise RecordExistsError(f"job {record.job_id} exists", existing)
            self._records[record.job_id] = record
            self._messages[record.job_id] = message
            self.writes.append((record.job_id, record.state))
            return record

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._live(job_id)

    def update(self, record: JobRecord, expected: JobRecord) -> JobRecord:
        if record.version != expected.version + 1 or record.job_id != expected.job_id:
            raise ValueError("an update must bump the version of the same job by one")
        with self._lock:
            current = self._live(expected.job_id)
            if current is None or current.state is not expected.state or current.version != expected.version:
                raise StaleRecordError(f"job {expected.job_id} changed meanwhile", current)
            self._records[record.job_id] = record
            self.writes.append((record.job_id, record.state))
            return record

    def find_by_runpod_id(self, runpod_id: str) -> JobRecord | None:
        with self._lock:
            for job_id in list(self._records):
                record = self._live(job_id)
                if record is not None and record.runpod_id == runpod_id:
                    return record
            return None

    def stale_open_jobs(self, state: JobState, updated_before_ms: int, limit: int) -> list[JobRecord]:
        if is_terminal(state):
            return []
        with self._lock:
            found = [
                record
                for job_id in list(self._records)
                if (record := self._live(job_id)) is not None
                and record.state is state
                and record.updated_at_ms <= updated_before_ms
            ]
        return sorted(found, key=lambda r: r.updated_at_ms)[:limit]

    def load_message(self, record: JobRecord) -> str | None:
        with self._lock:
            return self._messages.get(record.job_id)
