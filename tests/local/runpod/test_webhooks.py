"""Webhook retry policy, with an injected sender and no network."""

from __future__ import annotations

import asyncio

import pytest

from handlers.local.runpod import WebhookSender
from handlers.local.runpod._webhooks import delivered


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
    while len(sender.deliveries) < 3:
        await asyncio.sleep(0.01)
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
    while not any(d.status == 200 for d in sender.deliveries):
        await asyncio.sleep(0.01)
    await sender.close()
    assert [d.status for d in sender.deliveries] == [503, 200]


async def test_close_cancels_pending_retries() -> None:
    async def post(url: str, data: bytes) -> int:
        return 500

    sender = WebhookSender(attempts=3, retry_interval_s=60, timeout_s=1, post=post)
    sender.send("job-3", "http://hook", {})
    while not sender.deliveries:
        await asyncio.sleep(0.01)
    await sender.close()
    assert len(sender.deliveries) == 1
