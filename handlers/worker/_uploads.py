"""The uploads of one job's outputs, running beside the prompt: started as each node finishes, bounded by the
worker's upload slots, awaited before the job may succeed, and the first failure stops the job."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from handlers.worker._storage import UploadFailed

__all__ = ["Uploads"]


class Uploads:
    """Tracks one job's upload tasks. :attr:`failed` is set as soon as one fails (the job run races it against
    the prompt); :attr:`spent_ms` adds up the time spent holding an upload slot."""

    def __init__(self, slots: asyncio.Semaphore, clock_ms: Callable[[], float]) -> None:
        self._slots = slots
        self._clock_ms = clock_ms
        self._tasks: set[asyncio.Task[None]] = set()
        self.failed = asyncio.Event()
        self.spent_ms = 0.0

    def start(self, work: Callable[[], Awaitable[None]], name: str) -> None:
        task = asyncio.create_task(self._run(work), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def _run(self, work: Callable[[], Awaitable[None]]) -> None:
        async with self._slots:
            began = self._clock_ms()
            try:
                await work()
            finally:
                self.spent_ms += self._clock_ms() - began

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failed.set()

    async def wait(self) -> None:
        """Every upload started so far (and any they start) is done; raises the first failure."""
        while self._tasks:
            pending = list(self._tasks)
            self._tasks.clear()
            for outcome in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome

    def failure(self) -> BaseException:
        """The exception of a failed upload (after :attr:`failed` was set)."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception() or UploadFailed("an output upload failed")
        return UploadFailed("an output upload failed")

    async def cancel(self) -> None:
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
