"""The job lifecycle as pure data: states, allowed transitions, and RunPod's statuses mapped onto them.

    ACCEPTED ─▶ SUBMITTED ─▶ RUNNING ─▶ SUCCEEDED | FAILED | CANCELLED | TIMED_OUT
        └─▶ REJECTED (invalid input, never submitted)

A resubmission (reconciler: worker lost, or failed with a retryable error) moves SUBMITTED or RUNNING to SUBMITTED
again with a new attempt. ACCEPTED may be rewritten as ACCEPTED: a submitter claiming the job, or recording why a
submission attempt failed. Terminal states never move.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "INITIAL_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "JobState",
    "RunPodStatus",
    "can_transition",
    "is_terminal",
    "state_for_runpod",
]


class JobState(StrEnum):
    ACCEPTED = "ACCEPTED"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"


class RunPodStatus(StrEnum):
    """RunPod's job statuses (``/status``, webhooks)."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


_ENDS = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT})

TRANSITIONS: MappingProxyType[JobState, frozenset[JobState]] = MappingProxyType(
    {
        # ACCEPTED again: a submitter claims the job, or records why a submission attempt failed (transient).
        # FAILED: submission kept failing past the attempt limit; CANCELLED: cancelled before it was submitted.
        JobState.ACCEPTED: frozenset(
            {JobState.ACCEPTED, JobState.SUBMITTED, JobState.REJECTED, JobState.FAILED, JobState.CANCELLED}
        ),
        # SUBMITTED again: resubmitted (new RunPod id, attempt + 1). A fast job may end before any RUNNING is seen.
        JobState.SUBMITTED: frozenset({JobState.SUBMITTED, JobState.RUNNING, *_ENDS}),
        # RUNNING again: a progress update. SUBMITTED: resubmitted after the worker was lost.
        JobState.RUNNING: frozenset({JobState.RUNNING, JobState.SUBMITTED, *_ENDS}),
        JobState.SUCCEEDED: frozenset(),
        JobState.FAILED: frozenset(),
        JobState.CANCELLED: frozenset(),
        JobState.TIMED_OUT: frozenset(),
        JobState.REJECTED: frozenset(),
    }
)

TERMINAL_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
#: The states a job record may be created in.
INITIAL_STATES = frozenset({JobState.ACCEPTED, JobState.REJECTED})

_FROM_RUNPOD = MappingProxyType(
    {
        RunPodStatus.IN_QUEUE: JobState.SUBMITTED,
        RunPodStatus.IN_PROGRESS: JobState.RUNNING,
        RunPodStatus.RUNNING: JobState.RUNNING,
        RunPodStatus.COMPLETED: JobState.SUCCEEDED,
        RunPodStatus.FAILED: JobState.FAILED,
        RunPodStatus.CANCELLED: JobState.CANCELLED,
        RunPodStatus.TIMED_OUT: JobState.TIMED_OUT,
    }
)


def is_terminal(state: JobState) -> bool:
    return state in TERMINAL_STATES


def can_transition(current: JobState, target: JobState) -> bool:
    """Whether a record in ``current`` may be written as ``target``."""
    return target in TRANSITIONS[current]


def state_for_runpod(status: RunPodStatus | str) -> JobState:
    """The job state a RunPod status means (``IN_QUEUE`` → SUBMITTED, ``COMPLETED`` → SUCCEEDED, ...)."""
    return _FROM_RUNPOD[RunPodStatus(status)]
