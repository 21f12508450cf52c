"""The WebSocket hub without a server: one client that stops reading must not hold up the others."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from aiohttp import web

from handlers.local.comfyui import Faults
from handlers.local.comfyui._hub import Hub


class _Socket:
    """Just enough of ``web.WebSocketResponse``; ``stuck`` never accepts a message, as a full send buffer."""

    def __init__(self, stuck: bool = False) -> None:
        self.stuck = stuck
        self.closed = False
        self.received: list[str] = []

    async def send_str(self, data: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.received.append(data)

    async def close(self, **_: Any) -> None:
        self.closed = True


async def test_a_client_that_stops_reading_is_dropped_and_the_others_still_get_their_messages() -> None:
    hub = Hub(Faults(), send_timeout_s=0.05)
    stuck, reader = _Socket(stuck=True), _Socket()
    hub.register("stuck", cast(web.WebSocketResponse, stuck))
    hub.register("reader", cast(web.WebSocketResponse, reader))
    runner = asyncio.ensure_future(hub.run())
    try:
        for number in range(3):
            hub.send("status", {"n": number}, None)
        async with asyncio.timeout(5):
            await hub.flush()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert len(reader.received) == 3
    assert hub.sockets["stuck"].dropped
