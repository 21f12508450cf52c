"""What can go wrong on the dispatch side, in three branches that never mix::

    DispatchError
    ├── TransientError          a retry may help: the SQS message goes back to the queue
    │   ├── RunPodUnavailable   RunPod answered 429 or 5xx, timed out, or could not be reached
    │   │   └── RunPodRateLimited   429 (``retry_after_s`` when RunPod said)
    │   └── StoreUnavailable    DynamoDB or S3 throttled, failed or could not be reached
    ├── InvalidJobError         the job itself is wrong (carries the ``JobError``): never retried
    ├── UsageError              we are misconfigured or misused: retrying the same call cannot help
    │   ├── RunPodAuthError     RunPod answered 401/403: the API key is wrong
    │   └── RunPodRequestError  RunPod answered another 4xx (e.g. /retry of a job that is not FAILED)
    └── Outcome                 facts the state machine acts on, not failures
        ├── RunPodJobNotFound   RunPod does not know the job (404: forgotten, TTL expired, retention over)
        └── ConditionFailed     a conditional write lost; ``existing`` is the item that won (or ``None``)
            ├── RecordExistsError   the job id is taken
            └── StaleRecordError    the record is no longer in the state/version the writer expected

A bad environment is not a dispatch error but :class:`handlers.common.ConfigError` (one for both halves), raised
when the runtime is built at cold start, before any event is handled.

Third-party exceptions (httpx, botocore) are translated into these in exactly one place each: ``_runpod.py`` for
httpx, ``_aws_errors.py`` for botocore.
"""

from __future__ import annotations

from handlers.contract import JobError, JobRecord

__all__ = [
    "ConditionFailed",
    "DispatchError",
    "InvalidJobError",
    "Outcome",
    "RecordExistsError",
    "RunPodAuthError",
    "RunPodJobNotFound",
    "RunPodRateLimited",
    "RunPodRequestError",
    "RunPodUnavailable",
    "StaleRecordError",
    "StoreUnavailable",
    "TransientError",
    "UsageError",
]


class DispatchError(Exception):
    """Base of every error the dispatch side raises on purpose."""


class TransientError(DispatchError):
    """Trouble that a later attempt may not meet."""


class RunPodUnavailable(TransientError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RunPodRateLimited(RunPodUnavailable):
    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after_s = retry_after_s


class StoreUnavailable(TransientError):
    pass


class InvalidJobError(DispatchError):
    """The job cannot run as given; ``error`` is what its record and its caller see."""

    def __init__(self, error: JobError) -> None:
        super().__init__(error.summary())
        self.error = error


class UsageError(DispatchError):
    pass


class RunPodAuthError(UsageError):
    pass


class RunPodRequestError(UsageError):
    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class Outcome(DispatchError):
    """Not a failure: something the caller branches on."""


class RunPodJobNotFound(Outcome):
    pass


class ConditionFailed(Outcome):
    def __init__(self, message: str, existing: JobRecord | None) -> None:
        super().__init__(message)
        self.existing = existing


class RecordExistsError(ConditionFailed):
    pass


class StaleRecordError(ConditionFailed):
    pass
