"""Webhook retry policy, with an injected sender and no network."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from handlers.local.runpod import WebhookSender
from handlers.local.runpod._webhooks import delivered


async def _until(done: Callable[[], bool]) -> None:
    """Let the background delivery task run until ``done``; fail after 5 s rather than hang."""
    async with asyncio.timeout(5):
        while not done():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (None, False), (302, False), (500, False)])
def test_delivered(status: int | None, ok: bool) -> None:
    assert delivered(status) is ok


async def test_retries_transport_errors_and_timeouts_then_gives_up() -> None:
    calls: list[str] = []

    async def post(url: str, data: bytes) -> int:
        calls.append(url)
        if len(calls) == 1:
            raise ConnectionRefusedError("refused")
        await asyncio.sleep(10)  # longer than the timeout
        return 200

    sender = WebhookSender(attempts=3, retry_interval_s=0, timeout_s=0.05, post=post)
    sender.send("job-1", "http://hook", {"id": "job-1"})
    await _until(lambda: len(sender.deliveries) == 3)
    await sender.close()
    assert [d.attempt for d in sender.deliveries] == [1, 2, 3]
    assert [d.error.split(":")[0] if d.error else None for d in sender.deliveries] == [
        "ConnectionRefusedError",
        "TimeoutError",
        "TimeoutError",
    ]
    assert len(calls) == 3


async def test_stops_at_the_first_success() -> None:
    statuses = iter([503, 200, 200])

    async def post(url: str, data: bytes) -> int:
        return next(statuses)

    sender = WebhookSender(attempts=3, retry_interval_s=0, timeout_s=1, post=post)
    sender.send("job-2", "http://hook", {"id": "job-2"})
    await _until(lambda: any(d.status == 200 for d in sender.deliveries))
    await sender.close()
    assert [d.status for d in sender.deliveries] == [503, 200]


async def test_close_cancels_pending_retries() -> None:
    async def post(url: str, data: bytes) -> int:
        return 500

    sender = WebhookSender(attempts=3, retry_interval_s=60, timeout_s=1, post=post)
    sender.send("job-3", "http://hook", {})
    await _until(lambda: bool(sender.deliveries))
    await asyncio.wait_for(sender.close(), 5)  # a retry that is not cancelled would hold close() for 60 s
    assert len(sender.deliveries) == 1


async def test_a_failed_delivery_is_logged_without_the_receiver_secret(caplog: pytest.LogCaptureFixture) -> None:
    async def post(url: str, data: bytes) -> int:
        return 500

    sender = WebhookSender(attempts=1, retry_interval_s=0, timeout_s=1, post=post)
    with caplog.at_level(logging.INFO, logger="handlers.local.runpod._webhooks"):
        sender.send("job-4", "http://user:pw@hook:8080/in?token=s3cret", {})
        await _until(lambda: "job-4" in caplog.text)
    await sender.close()
    assert "http://hook:8080/in failed" in caplog.text
    assert "s3cret" not in caplog.text and "pw" not in caplog.text
