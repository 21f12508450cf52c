"""The public API callers use: ``/v2/{endpoint_id}/run``, ``runsync``, ``status``, ``stream``, ``cancel``, ``retry``,
``purge-queue`` and ``health``, with RunPod's auth, limits, statuses and JSON shapes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from handlers.local.runpod._http import BodyError, authorized, endpoint_store, error, platform, read_json
from handlers.local.runpod._jobs import InvalidRequestError, Job, UnknownJobError

__all__ = ["UNKNOWN_JOB_MESSAGE", "routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What RunPod answers for a job id it does not know (seen in the wild; not in its docs).
UNKNOWN_JOB_MESSAGE = "request does not exist"


def _public(name: str) -> Callable[[Handler], Handler]:
    """Auth, endpoint check, injected faults and error mapping shared by every public route."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            emulator = platform(request)
            if not authorized(request, emulator.config.api_key):
                return error(401, "unauthorized: send your API key as 'Authorization: Bearer <key>'")
            if request.match_info["endpoint_id"] not in emulator.stores:
                return error(404, f"endpoint {request.match_info['endpoint_id']} not found")
            fault = emulator.faults.take(name)
            if fault is not None:
                return error(fault, f"injected fault: HTTP {fault}")
            try:
                return await handler(request)
            except BodyError as exc:
                return exc.response
            except InvalidRequestError as exc:
                return error(400, str(exc))
            except UnknownJobError:
                return error(404, UNKNOWN_JOB_MESSAGE)
            finally:
                emulator.changed()

        return guarded

    return wrap


def _brief(job: Job) -> web.Response:
    return web.json_response({"id": job.id, "status": job.status.value})


@_public("run")
async def _run(request: web.Request) -> web.StreamResponse:
    emulator = platform(request)
    body = await read_json(request, emulator.config.max_run_bytes)
    return _brief(endpoint_store(request).submit(body, sync=False))


@_public("runsync")
async def _runsync(request: web.Request) -> web.StreamResponse:
    emulator = platform(request)
    cfg = emulator.config
    wait_ms = cfg.runsync_wait_default_ms
    if "wait" in request.query:
        try:
            wait_ms = int(request.query["wait"])
        except ValueError:
            return error(400, "wait must be an integer number of milliseconds")
        wait_ms = min(max(wait_ms, cfg.runsync_wait_min_ms), cfg.runsync_wait_max_ms)
    body = await read_json(request, cfg.max_runsync_bytes)
    job = endpoint_store(request).submit(body, sync=True)
    emulator.changed()
    await emulator.wait_until(lambda: job.terminal, wait_ms / 1000)
    # Not finished in time: the current status object (IN_QUEUE or IN_PROGRESS); the caller polls /status.
    return web.json_response(job.status_body())


@_public("status")
async def _status(request: web.Request) -> web.StreamResponse:
    store = endpoint_store(request)
    job_id = request.match_info["job_id"]
    if "ttl" in request.query:
        try:
            ttl_ms = int(request.query["ttl"])
        except ValueError:
            return error(400, "ttl must be an integer number of milliseconds")
        job = store.set_ttl(job_id, ttl_ms)
    else:
        job = store.get(job_id)
    return web.json_response(job.status_body())


@_public("stream")
async def _stream(request: web.Request) -> web.StreamResponse:
    job, chunks = endpoint_store(request).read_stream(request.match_info["job_id"])
    return web.json_response({"status": job.status.value, "stream": [{"output": chunk} for chunk in chunks]})


@_public("cancel")
async def _cancel(request: web.Request) -> web.StreamResponse:
    return _brief(endpoint_store(request).cancel(request.match_info["job_id"]))


@_public("retry")
async def _retry(request: web.Request) -> web.StreamResponse:
    return _brief(endpoint_store(request).retry(request.match_info["job_id"]))


@_public("purge-queue")
async def _purge(request: web.Request) -> web.StreamResponse:
    return web.json_response({"removed": endpoint_store(request).purge_queue(), "status": "completed"})


@_public("health")
async def _health(request: web.Request) -> web.StreamResponse:
    return web.json_response(endpoint_store(request).health())


def routes() -> list[web.RouteDef]:
    base = "/v2/{endpoint_id}"
    return [
        web.post(f"{base}/run", _run),
        web.post(f"{base}/runsync", _runsync),
        web.get(f"{base}/status/{{job_id}}", _status),
        web.get(f"{base}/stream/{{job_id}}", _stream),
        web.post(f"{base}/cancel/{{job_id}}", _cancel),
        web.post(f"{base}/retry/{{job_id}}", _retry),
        web.post(f"{base}/purge-queue", _purge),
        web.get(f"{base}/health", _health),
    ]
