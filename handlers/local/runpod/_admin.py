"""Knobs for tests, under ``/_emulator/`` (a path RunPod does not use): list jobs, workers and webhook attempts,
forget a job (as if RunPod lost it), and make the next N public calls fail with a chosen status."""

from __future__ import annotations

import json

from aiohttp import web

from handlers.local.runpod._http import error, platform
from handlers.local.runpod._jobs import UnknownJobError
from handlers.local.runpod._platform import Faults

__all__ = ["routes"]


async def _jobs(request: web.Request) -> web.StreamResponse:
    return web.json_response({"jobs": [job.summary() for job in platform(request).store.jobs()]})


async def _workers(request: web.Request) -> web.StreamResponse:
    # Every endpoint's workers (the configured one and any created through /v1/endpoints).
    workers = [
        w.summary(store.running_count(w.id)) for store in platform(request).stores.values() for w in store.workers()
    ]
    return web.json_response({"workers": workers})


async def _webhooks(request: web.Request) -> web.StreamResponse:
    return web.json_response({"deliveries": [d.summary() for d in platform(request).webhooks.deliveries]})


async def _forget(request: web.Request) -> web.StreamResponse:
    emulator = platform(request)
    try:
        job = emulator.store.forget(request.match_info["job_id"])
    except UnknownJobError:
        return error(404, "job not found")
    emulator.changed()
    return web.json_response({"forgotten": job.id})


async def _faults(request: web.Request) -> web.StreamResponse:
    """Body ``{"status": 429, "count": 3, "routes": ["run"]}``; ``routes`` (names as in the URL: run, runsync,
    status, stream, cancel, retry, purge-queue, health) is optional. ``{"count": 0}`` clears."""
    emulator = platform(request)
    try:
        body = json.loads(await request.read())
        status, count = int(body.get("status", 500)), int(body.get("count", 1))
        routes = frozenset(str(name) for name in body.get("routes", []))
    except (ValueError, TypeError, AttributeError) as exc:
        return error(400, f"expected {{'status': int, 'count': int, 'routes': [str]}}: {exc}")
    if not 400 <= status <= 599 or count < 0:
        return error(400, "status must be 4xx or 5xx and count not negative")
    emulator.faults = Faults(status=status, count=count, routes=routes)
    return web.json_response({"status": status, "count": count, "routes": sorted(routes)})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/_emulator/jobs", _jobs),
        web.get("/_emulator/workers", _workers),
        web.get("/_emulator/webhooks", _webhooks),
        web.post("/_emulator/jobs/{job_id}/forget", _forget),
        web.post("/_emulator/faults", _faults),
    ]
