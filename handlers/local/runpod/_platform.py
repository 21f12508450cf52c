"""The asyncio side of the emulator: one JobStore, a wake-up signal for long polls, the sweeper and webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from handlers.local.runpod._config import EmulatorConfig
from handlers.local.runpod._jobs import Clock, JobStore
from handlers.local.runpod._management import Management
from handlers.local.runpod._webhooks import PostFn, WebhookSender

__all__ = ["Faults", "Platform"]


@dataclass
class Faults:
    """Injected failures for the next public API calls (admin knob): ``count`` answers with ``status``."""

    status: int = 0
    count: int = 0
    routes: frozenset[str] = field(default_factory=frozenset)  # empty: every public route

    def take(self, route: str) -> int | None:
        if self.count <= 0 or (self.routes and route not in self.routes):
            return None
        self.count -= 1
        return self.status


class Platform:
    """Shared by the public and worker routes. Call ``changed()`` after every mutation of ``store``: it wakes
    the long polls and hands newly ended jobs to the webhook sender."""

    def __init__(self, config: EmulatorConfig, *, clock: Clock = time.monotonic, post: PostFn | None = None) -> None:
        self.config = config
        self._clock = clock
        #: The endpoint given by ``config`` plus any created through the management API (``/v1/endpoints``).
        self.store = JobStore(config, clock)
        self.stores: dict[str, JobStore] = {config.endpoint_id: self.store}
        self.management = Management()
        self.webhooks = WebhookSender(
            attempts=config.webhook_attempts,
            retry_interval_s=config.webhook_retry_interval_s,
            timeout_s=config.webhook_timeout_s,
            post=post,
        )
        self.faults = Faults()
        self.closing = False
        self._wake = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None

    def add_endpoint(self, endpoint_id: str) -> JobStore:
        """Serve ``/v2/{endpoint_id}/`` (public API and worker protocol) for an endpoint created at run time."""
        return self.stores.setdefault(endpoint_id, JobStore(self.config, self._clock))

    def remove_endpoint(self, endpoint_id: str) -> None:
        if endpoint_id != self.config.endpoint_id:
            self.stores.pop(endpoint_id, None)

    def changed(self) -> None:
        for store in list(self.stores.values()):
            for job in store.drain_finished():
                if job.webhook is not None:
                    self.webhooks.send(job.id, job.webhook, job.webhook_body())
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def wait_until(self, ready: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``ready()`` holds (re-checked on every change) or the timeout passes or the server closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            wake = self._wake
            if ready():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closing:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining)

    async def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            stores = list(self.stores.values())
            before = [store.revision for store in stores]
            for store in stores:
                store.sweep()
            if [store.revision for store in stores] != before:
                self.changed()

    async def close(self) -> None:
        self.closing = True
        self.changed()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.webhooks.close()
