"""Webhook delivery as RunPod does it: POST the job's JSON when it ends; on failure retry twice, 10 s apart.

No signature or secret is sent: RunPod documents none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["Delivery", "PostFn", "WebhookSender", "delivered"]

log = logging.getLogger(__name__)

# Sends one attempt; returns the receiver's HTTP status, raises OSError/aiohttp/timeout errors on transport failure.
PostFn = Callable[[str, bytes], Awaitable[int]]
#: Attempts kept for the admin view: the newest ones, so a long-running emulator does not grow without bound.
_KEPT_DELIVERIES = 1000


def _shown(url: str) -> str:
    """The URL for a log line: a receiver's secret usually rides in the query (dispatch's ``?token=``)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def delivered(status: int | None) -> bool:
    """RunPod asks receivers for a 200; any 2xx counts, anything else (or no answer) is retried."""
    return status is not None and 200 <= status < 300


@dataclass(frozen=True)
class Delivery:
    """One attempt, kept for the admin view and for tests."""

    job_id: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    body: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "url": self.url,
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "body": self.body,
        }


class WebhookSender:
    """Fire-and-forget delivery tasks with bounded retries; ``close`` cancels what is still pending."""

    def __init__(self, *, attempts: int, retry_interval_s: float, timeout_s: float, post: PostFn | None = None) -> None:
        self._attempts = attempts
        self._interval = retry_interval_s
        self._timeout = timeout_s
        self._post = post
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.deliveries: deque[Delivery] = deque(maxlen=_KEPT_DELIVERIES)

    def send(self, job_id: str, url: str, body: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(job_id, url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job_id: str, url: str, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        for attempt in range(1, self._attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                status = await asyncio.wait_for(self._post_once(url, data), self._timeout)
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.deliveries.append(Delivery(job_id, url, attempt, status, error, body))
            if delivered(status):
                return
            log.info("webhook for %s to %s failed (attempt %d: %s)", job_id, _shown(url), attempt, error or status)
            if attempt < self._attempts:
                await asyncio.sleep(self._interval)

    async def _post_once(self, url: str, data: bytes) -> int:
        if self._post is not None:
            return await self._post(url, data)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
            await response.read()
            return response.status

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
