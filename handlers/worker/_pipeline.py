"""Several jobs in flight on one worker, one GPU: who may have a prompt in ComfyUI's queue.

The RunPod SDK hands the worker up to ``RELAY_MAX_CONCURRENT_JOBS`` jobs at once (its ``concurrency_modifier``).
Each job resolves, validates and stages on its own; its prompt then waits in ComfyUI's queue, so ComfyUI starts it
the moment the previous prompt ends while the worker uploads and returns the previous job. ComfyUI runs one prompt
at a time whatever happens here.

An exclusive job (LoRA training, or a template marked ``exclusive``) runs alone: it waits until every prompt already
queued has ended, and while it waits or runs no other job queues a prompt (writer preference, so a stream of small
jobs cannot starve it). While an exclusive job is held the worker asks the SDK for no further jobs
(:meth:`GpuGate.concurrency`): they would only wait behind it on this worker instead of running on another.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Final

__all__ = ["DEFAULT_MAX_CONCURRENT_JOBS", "GpuGate"]

#: One job running and one waiting in ComfyUI's queue: enough that the GPU never waits for an upload or a job-take
#: (as long as a job runs longer than its predecessor's upload plus the SDK's job-take), while a worker that dies
#: loses at most two jobs and RunPod's autoscaler still sees the rest of the queue.
DEFAULT_MAX_CONCURRENT_JOBS: Final = 2


class GpuGate:
    """Prompts in ComfyUI: any number of shared holders, or one exclusive holder alone. Also counts the exclusive
    jobs in flight (from the moment they are known to be exclusive) for :meth:`concurrency`."""

    def __init__(self, max_jobs: int = DEFAULT_MAX_CONCURRENT_JOBS) -> None:
        if max_jobs < 1:
            raise ValueError("max_jobs must be >= 1")
        self.max_jobs = max_jobs
        self._shared = 0
        self._exclusive = False
        self._exclusive_waiting = 0
        self._exclusive_jobs = 0
        self._waiting = 0
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        # Made on first use: the gate is built before the SDK creates its event loop.
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    @property
    def holders(self) -> int:
        return self._shared + (1 if self._exclusive else 0)

    @property
    def waiting(self) -> int:
        """Jobs waiting to queue their prompt (for logs and tests)."""
        return self._waiting

    @property
    def exclusive_held(self) -> bool:
        return self._exclusive

    def concurrency(self, current: int = 0) -> int:
        """The SDK's ``concurrency_modifier``: how many jobs the worker holds. 1 while an exclusive job is in flight
        (the SDK then takes no job until it is done)."""
        return 1 if self._exclusive_jobs else self.max_jobs

    @contextlib.contextmanager
    def exclusive_job(self) -> Iterator[None]:
        """Mark the job as exclusive for as long as it is in flight (see :meth:`concurrency`)."""
        self._exclusive_jobs += 1
        try:
            yield
        finally:
            self._exclusive_jobs -= 1

    @contextlib.asynccontextmanager
    async def hold(self, *, exclusive: bool) -> AsyncIterator[None]:
        """Hold the gate while the job's prompt is queued or running in ComfyUI."""
        changed = self._condition()
        async with changed:
            self._waiting += 1
            try:
                if exclusive:
                    self._exclusive_waiting += 1
                    try:
                        await changed.wait_for(lambda: not self._exclusive and self._shared == 0)
                    finally:
                        self._exclusive_waiting -= 1
                        changed.notify_all()  # a cancelled exclusive waiter no longer holds shared jobs back
                    self._exclusive = True
                else:
                    await changed.wait_for(lambda: not self._exclusive and self._exclusive_waiting == 0)
                    self._shared += 1
            finally:
                self._waiting -= 1
        try:
            yield
        finally:
            await asyncio.shield(self._release(exclusive))

    async def _release(self, exclusive: bool) -> None:
        changed = self._condition()
        async with changed:
            if exclusive:
                self._exclusive = False
            else:
                self._shared -= 1
            changed.notify_all()
