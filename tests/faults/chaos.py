"""A chaos proxy on 127.0.0.1: forwards HTTP to one upstream, and on demand answers errors (a fraction of requests,
or the next ``n``), or holds matching requests until released. It records what it forwarded and how it went."""

from __future__ import annotations

import asyncio
import io
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

from handlers.local._serving import ServerThread

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"})


@dataclass
class Chaos:
    """What the proxy does next. Counters only grow; every knob is bounded (``budget``)."""

    fail_fraction: float = 0.0
    fail_next: int = 0
    budget: int = 0
    """How many more requests the fraction may still fail (a storm ends by itself)."""
    statuses: tuple[int, ...] = (503,)
    body: Callable[[int], tuple[str, str]] = lambda status: ('{"error": "injected"}', "application/json")
    only: Callable[[str, str], bool] = lambda method, path: True
    hold: Callable[[str, str], bool] | None = None
    failed: int = 0
    held: list[str] = field(default_factory=list)
    forwarded: list[tuple[str, str, int]] = field(default_factory=list)


class ChaosProxy:
    def __init__(self, upstream: str, seed: int = 0) -> None:
        self.upstream = upstream
        self.chaos = Chaos()
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self._release: asyncio.Event | None = None
        self.server = ServerThread(self._app)

    @property
    def url(self) -> str:
        return self.server.url

    def _should_fail(self, method: str, path: str) -> int | None:
        with self._lock:
            c = self.chaos
            if not c.only(method, path):
                return None
            if c.fail_next > 0:
                c.fail_next -= 1
            elif c.budget > 0 and self.rng.random() < c.fail_fraction:
                c.budget -= 1
            else:
                return None
            c.failed += 1
            return self.rng.choice(c.statuses)

    def release(self) -> None:
        """Let every held request (and later matching ones) through."""
        with self._lock:
            self.chaos.hold = None
        event = self._release
        if event is not None:
            self.server.call(self._set(event))

    @staticmethod
    async def _set(event: asyncio.Event) -> None:
        event.set()

    async def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        session: dict[str, ClientSession] = {}
        self._release = asyncio.Event()

        async def open_session(_app: web.Application) -> None:
            session["s"] = ClientSession(auto_decompress=False)

        async def close_session(_app: web.Application) -> None:
            await session["s"].close()

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            method, path = request.method, request.path_qs
            status = self._should_fail(method, path)
            if status is not None:
                text, content_type = self.chaos.body(status)
                return web.Response(status=status, text=text, content_type=content_type)
            hold = self.chaos.hold
            if hold is not None and hold(method, path):
                self.chaos.held.append(path)
                assert self._release is not None
                await self._release.wait()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            async with session["s"].request(
                method, self.upstream + path, headers=headers, data=io.BytesIO(body)
            ) as upstream:
                payload = await upstream.read()
                out: dict[str, Any] = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
                with self._lock:
                    self.chaos.forwarded.append((method, path, upstream.status))
                return web.Response(status=upstream.status, body=payload, headers=out)

        app.router.add_route("*", "/{tail:.*}", handle)
        app.on_startup.append(open_session)
        app.on_cleanup.append(close_session)
        return app

    def __enter__(self) -> ChaosProxy:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.stop()


def s3_error(status: int) -> tuple[str, str]:
    code = "SlowDown" if status == 503 else "InternalError"
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected</Message></Error>'
    return xml, "application/xml"
