"""A model server on 127.0.0.1 that can misbehave: ranges, drops mid-transfer, 404/500, wrong bytes, tokens."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from handlers.image import ModelPin


def blob(name: str, size: int) -> bytes:
    """Deterministic bytes for a file name (different names, different bytes)."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


@dataclass
class ModelServer:
    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    #: name -> faults consumed one per request: "drop:N", "500", "404", "wrong", "ignore-range", "stall".
    faults: dict[str, list[str]] = field(default_factory=dict)
    #: name -> faults applied to every request: "500", "404", "auth:TOKEN".
    always: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: Requests wait here until this many are in flight at once (proves parallel downloads).
    barrier: int = 0
    in_flight: int = 0
    peak: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, size: int = 300_000) -> bytes:
        self.files[name] = data = blob(name, size)
        return data

    def pin(self, name: str, *, folder: str = "checkpoints", **overrides: Any) -> ModelPin:
        data = self.files[name]
        fields: dict[str, Any] = {
            "folder": folder,
            "file": name,
            "url": f"{self.url}/files/{name}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        fields.update(overrides)
        return ModelPin(**fields)

    def hits(self, name: str) -> list[dict[str, str]]:
        return [headers for path, headers in self.requests if path == name]


async def _serve(server: ModelServer, request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    server.requests.append((name, dict(request.headers)))
    server.in_flight += 1
    server.peak = max(server.peak, server.in_flight)
    try:
        if server.barrier and server.in_flight >= server.barrier:
            server._arrived.set()
        if server.barrier:
            # Bounded: a fetcher that is not parallel makes the test fail on `peak`, never hang.
            await asyncio.wait_for(server._arrived.wait(), timeout=5.0)
        return await _answer(server, request, name)
    finally:
        server.in_flight -= 1


async def _answer(server: ModelServer, request: web.Request, name: str) -> web.StreamResponse:
    always = server.always.get(name, "")
    if always.startswith("auth:") and request.headers.get("Authorization") != f"Bearer {always[5:]}":
        return web.Response(status=401, text="token needed")
    if always in {"500", "404"}:
        return web.Response(status=int(always))
    pending = server.faults.get(name, [])
    fault = pending.pop(0) if pending else ""
    if fault in {"500", "404"}:
        return web.Response(status=int(fault))
    if name not in server.files:
        return web.Response(status=404)
    data = server.files[name]
    if fault == "wrong":
        data = bytes(b ^ 0xFF for b in data)
    start = 0
    ranged = request.headers.get("Range", "")
    if ranged.startswith("bytes=") and fault != "ignore-range":
        start = int(ranged[6:].split("-")[0])
        if start >= len(data):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
    body = data[start:]
    response = web.StreamResponse(status=206 if start else 200)
    response.content_length = len(body)
    if start:
        response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    await response.prepare(request)
    if fault.startswith("drop:"):
        cut = int(fault[5:])
        await response.write(body[:cut])
        assert request.transport is not None
        request.transport.close()  # the connection dies mid-transfer
        return response
    await response.write(body)
    await response.write_eof()
    return response


@pytest.fixture
async def model_server() -> AsyncIterator[ModelServer]:
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    holder: dict[str, ModelServer] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _serve(holder["server"], request)

    app.router.add_get("/files/{name}", handle)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    holder["server"] = ModelServer(url=f"http://127.0.0.1:{port}")
    try:
        yield holder["server"]
    finally:
        await runner.cleanup()
