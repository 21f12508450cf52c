"""The loopback server helper: a start-up that hangs fails the caller instead of hanging it."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from handlers.local import _serving
from handlers.local._serving import ServerThread


def test_a_server_that_does_not_start_in_time_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_serving, "_STARTUP_TIMEOUT_S", 0.1)

    async def slow_app() -> web.Application:
        await asyncio.sleep(1)  # longer than the start-up timeout; then the server sees it was stopped and exits
        return web.Application()

    server = ServerThread(slow_app)
    with pytest.raises(RuntimeError, match="did not start within"):
        server.start()
    assert server._thread is not None and not server._thread.is_alive()
