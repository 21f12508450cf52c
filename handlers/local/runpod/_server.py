"""Assemble the emulator's aiohttp application."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from handlers.local.runpod import _admin, _api, _rest, _worker_api
from handlers.local.runpod._config import MIB, EmulatorConfig
from handlers.local.runpod._http import PLATFORM, error
from handlers.local.runpod._jobs import Clock
from handlers.local.runpod._platform import Platform
from handlers.local.runpod._webhooks import PostFn

__all__ = ["create_app"]


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown routes and wrong methods answer in RunPod's JSON error shape rather than aiohttp's plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason)


def create_app(
    config: EmulatorConfig | None = None, *, clock: Clock = time.monotonic, webhook_post: PostFn | None = None
) -> web.Application:
    """The emulator for one endpoint. ``clock`` and ``webhook_post`` are for tests; the defaults are real."""
    config = config or EmulatorConfig()
    largest = max(config.max_run_bytes, config.max_runsync_bytes, config.max_result_bytes)
    # aiohttp refuses bodies above client_max_size with 413 before a handler runs; leave room so the routes can
    # apply RunPod's own limits and answers.
    app = web.Application(client_max_size=largest + MIB, middlewares=[_json_errors])

    emulator = Platform(config, clock=clock, post=webhook_post)
    app[PLATFORM] = emulator

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await emulator.start()
        yield
        await emulator.close()

    app.cleanup_ctx.append(lifecycle)
    # Long polls must end before aiohttp waits for open requests at shutdown, or every stop takes the full wait.
    app.on_shutdown.append(_wake_long_polls)
    app.add_routes([*_api.routes(), *_worker_api.routes(), *_rest.routes(), *_admin.routes()])
    return app


async def _wake_long_polls(app: web.Application) -> None:
    emulator = app[PLATFORM]
    emulator.closing = True
    emulator.changed()
