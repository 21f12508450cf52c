"""The job store interface: one record per job, written only by conditional writes.

Implementations: :class:`~handlers.dispatch._dynamo_store.DynamoJobStore` (DynamoDB + S3 for large inputs) and
:class:`~handlers.dispatch._memory_store.MemoryJobStore` (a dict, for unit and property tests). Both keep, next to
each record, the queue message it came from (input, policy, notify settings): the reconciler needs it to submit the
job again, and it holds caller secrets, so it never travels with the record itself.
"""

from __future__ import annotations

from typing import Protocol

from handlers.contract import JobRecord, JobState

__all__ = ["JobStore"]


class JobStore(Protocol):
    def create(self, record: JobRecord, message: str) -> JobRecord:
        """Store a new job (``message``: the queue message JSON) if its id is free (or its record has expired).
        Returns the record as stored (``input_s3_uri`` set when the message went to S3). Raises
        :class:`RecordExistsError` carrying the live record."""
        ...

    def get(self, job_id: str) -> JobRecord | None:
        """The record, or ``None`` when there is none or it has expired (TTL)."""
        ...

    def update(self, record: JobRecord, expected: JobRecord) -> JobRecord:
        """Replace ``expected`` by ``record`` if the stored one is still in ``expected``'s state and version.
        ``record.version`` must be ``expected.version + 1``. Raises :class:`StaleRecordError` carrying the current
        record (``None`` if it vanished)."""
        ...

    def find_by_runpod_id(self, runpod_id: str) -> JobRecord | None: ...

    def stale_open_jobs(self, state: JobState, updated_before_ms: int, limit: int) -> list[JobRecord]:
        """Open jobs in ``state`` last updated at or before ``updated_before_ms``, oldest first, at most ``limit``."""
        ...

    def load_message(self, record: JobRecord) -> str | None:
        """The queue message JSON stored with the job (``None`` if it is gone)."""
        ...
