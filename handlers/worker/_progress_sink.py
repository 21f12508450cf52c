"""Signed progress webhooks, sent from a background task so a slow or dead receiver never holds up the job.

Events wait in a small bounded queue. Progress coalesces (a newer progress event replaces a queued one: latest
wins); output events are kept unless the queue is full, in which case the oldest entry is dropped. Each POST has a
timeout and failures are logged, never raised. ``aclose`` gives the queue a bounded time to drain.

The receiver is the caller's URL: every POST goes through the one SSRF guard (``handlers.outbound``) - resolved,
every address checked, sent to the checked address - and a redirect is never followed (a 3xx is a failed send).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from handlers.contract import OutputReadyEvent, ProgressEvent, ProgressWebhook, ProgressWebhookPayload, sign_webhook
from handlers.outbound import AsyncResolver, OutboundGuard, UnresolvableHost, UrlRefused, async_system_resolver

__all__ = ["WebhookOutbox"]

logger = logging.getLogger("handlers.worker.webhook")

Event = ProgressEvent | OutputReadyEvent


class WebhookOutbox:
    """One job's progress webhook. ``offer`` never blocks; ``aclose`` flushes for at most ``drain_timeout_s``."""

    def __init__(
        self,
        webhook: ProgressWebhook,
        job_id: str,
        *,
        timeout_s: float = 5.0,
        max_queued: int = 16,
        allow_private: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: AsyncResolver = async_system_resolver,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._guard = OutboundGuard(allow_private=allow_private, async_resolver=resolver)
        # Refused up front (the job fails as invalid_input); DNS is checked again on every send.
        self._guard.check(webhook.url)
        self.webhook = webhook
        self.job_id = job_id
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: collections.deque[Event] = collections.deque()
        self._max = max(1, max_queued)
        self._wake = asyncio.Event()
        self._closing = False
        self._seq = 0
        self._clock = clock
        self._last_progress_at: float | None = None
        self._client = httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(timeout_s), trust_env=False, follow_redirects=False
        )
        self._task = asyncio.create_task(self._run(), name=f"progress webhook {job_id}")

    @classmethod
    async def open(cls, webhook: ProgressWebhook, job_id: str, **kwargs: Any) -> WebhookOutbox:
        """An outbox whose URL has passed the guard, DNS included: a receiver that resolves to a refused address
        fails the job at once (``UrlRefused``) instead of silently never hearing from it."""
        outbox = cls(webhook, job_id, **kwargs)
        try:
            await outbox._guard.apin(webhook.url)
        except UnresolvableHost as exc:
            logger.warning("progress webhook host does not resolve yet: %s", exc)
        except UrlRefused:
            await outbox.aclose(0)
            raise
        return outbox

    def offer(self, event: Event) -> None:
        if self._closing:
            return
        if isinstance(event, ProgressEvent):
            now = self._clock()
            interval = self.webhook.min_interval_ms / 1000
            queued = [e for e in self._queue if isinstance(e, ProgressEvent)]
            if queued:
                # Latest wins: replace what is still waiting instead of adding to it.
                for old in queued:
                    self._queue.remove(old)
                self.dropped += len(queued)
            elif self._last_progress_at is not None and now - self._last_progress_at < interval and event.percent < 100:
                self.dropped += 1
                return
            self._last_progress_at = now
        if len(self._queue) >= self._max:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            await self._send(self._queue.popleft())

    async def _send(self, event: Event) -> None:
        payload = ProgressWebhookPayload(
            job_id=self.job_id, seq=self._seq, sent_at_ms=int(self._clock() * 1000), event=event
        )
        self._seq += 1
        body = payload.model_dump_json(exclude_none=True).encode()
        headers = {"Content-Type": "application/json", **sign_webhook(self.webhook.secret, body, int(self._clock()))}
        try:
            pinned = await self._guard.apin(self.webhook.url)
            response = await self._client.post(
                pinned.url, content=body, headers={**headers, **pinned.headers}, extensions=pinned.extensions
            )
        except (UrlRefused, UnresolvableHost) as exc:
            self.failed += 1
            logger.warning("progress webhook refused: %s", exc)
            return
        except httpx.HTTPError as exc:
            self.failed += 1
            logger.warning("progress webhook %s failed: %s", pinned.source, type(exc).__name__)
            return
        if response.status_code >= 300:
            self.failed += 1
            logger.warning("progress webhook %s answered %s", pinned.source, response.status_code)
        else:
            self.sent += 1

    async def aclose(self, drain_timeout_s: float = 2.0) -> None:
        """Send what is queued (bounded by ``drain_timeout_s``), then stop."""
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            await self._client.aclose()
