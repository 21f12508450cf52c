"""The worker-facing protocol the ``runpod`` SDK speaks (``runpod.serverless.start`` in production mode).

URLs, as the SDK derives them from its environment (see ``worker_environment``)::

    GET  /v2/{ep}/job-take/{worker}?gpu=..&job_in_progress=0|1            one job dict, or 204 after a long poll
    GET  /v2/{ep}/job-take-batch/{worker}?gpu=..&batch_size=N&job_in_progress=..   a list of job dicts, or 204
    GET  /v2/{ep}/job-stop/{worker}?gpu=..     (job-take URL with /job-stop/) {"jobsToStop": [...]}, or 204
    POST /v2/{ep}/job-done/{worker}/{job}?gpu=..&isStream=..   result, or {"status": "IN_PROGRESS"} progress
    POST /v2/{ep}/job-stream/{worker}/{job}?gpu=..&isStream=false   one streamed chunk {"output": ...}
    GET  /v2/{ep}/ping/{worker}?gpu=..&runpod_version=..&job_id=..   heartbeat (separate process)

Authorization is the raw worker key (``RUNPOD_AI_API_KEY``). Bodies are JSON sent as form-urlencoded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from handlers.local.runpod._http import BodyError, authorized, endpoint_store, error, platform, read_json
from handlers.local.runpod._jobs import Job, UnknownJobError

__all__ = ["routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _worker(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        emulator = platform(request)
        if not authorized(request, emulator.config.worker_key):
            return error(401, "unauthorized worker")
        if request.match_info["endpoint_id"] not in emulator.stores:
            return error(404, f"endpoint {request.match_info['endpoint_id']} not found")
        try:
            return await handler(request)
        except BodyError as exc:
            return exc.response
        except UnknownJobError:
            return error(404, "job not found")
        finally:
            emulator.changed()

    return guarded


async def _hand_over(request: web.Request, jobs: list[Job], body: object) -> web.StreamResponse:
    """Write the jobs out; if the worker hung up meanwhile, put them back in the queue instead of losing them."""
    response = web.Response(body=json.dumps(body).encode(), content_type="application/json")
    try:
        await response.prepare(request)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        store = endpoint_store(request)
        for job in jobs:
            store.give_back(job)
    return response


async def _take(request: web.Request, batch: bool) -> web.StreamResponse:
    emulator = platform(request)
    store = endpoint_store(request)
    worker_id = request.match_info["worker_id"]
    count = 1
    if batch:
        try:
            count = max(1, int(request.query.get("batch_size", "1")))
        except ValueError:
            return error(400, "batch_size must be an integer")
    store.touch_worker(worker_id)
    if request.query.get("job_in_progress") == "0":
        store.worker_idle(worker_id)
        emulator.changed()
    taken: list[Job] = []

    def ready() -> bool:
        # The worker may have gone while we waited: never hand a job to a closed connection.
        if request.transport is None or request.transport.is_closing():
            return True
        taken.extend(store.take(worker_id, count))
        return bool(taken)

    await emulator.wait_until(ready, emulator.config.job_take_wait_s)
    if not taken:
        return web.Response(status=204)
    payloads = [job.worker_payload() for job in taken]
    return await _hand_over(request, taken, payloads if batch else payloads[0])


@_worker
async def _job_take(request: web.Request) -> web.StreamResponse:
    return await _take(request, batch=False)


@_worker
async def _job_take_batch(request: web.Request) -> web.StreamResponse:
    return await _take(request, batch=True)


@_worker
async def _job_stop(request: web.Request) -> web.StreamResponse:
    emulator = platform(request)
    worker_id = request.match_info["worker_id"]
    stops: list[str] = []

    def ready() -> bool:
        stops.extend(endpoint_store(request).pop_stop_signals(worker_id))
        return bool(stops)

    await emulator.wait_until(ready, emulator.config.job_stop_wait_s)
    if not stops:
        return web.Response(status=204)
    return web.json_response({"jobsToStop": stops})


@_worker
async def _job_done(request: web.Request) -> web.StreamResponse:
    emulator = platform(request)
    body = await read_json(request, emulator.config.max_result_bytes)
    if not isinstance(body, dict):
        return error(400, "job result must be a JSON object")
    worker_id, job_id = request.match_info["worker_id"], request.match_info["job_id"]
    if body.get("status") == "IN_PROGRESS":
        endpoint_store(request).progress(worker_id, job_id, body.get("output"))
    else:
        # A late result (job cancelled, timed out or requeued meanwhile) is accepted and ignored.
        endpoint_store(request).finish(worker_id, job_id, body)
    return web.json_response({})


@_worker
async def _job_stream(request: web.Request) -> web.StreamResponse:
    emulator = platform(request)
    body = await read_json(request, emulator.config.max_result_bytes)
    if not isinstance(body, dict):
        return error(400, "stream chunk must be a JSON object")
    endpoint_store(request).add_stream(request.match_info["worker_id"], request.match_info["job_id"], body)
    return web.json_response({})


@_worker
async def _ping(request: web.Request) -> web.StreamResponse:
    healthy = request.query.get("status", "healthy") != "unhealthy"
    # The SDK's heartbeat sends the ids of its in-progress jobs comma-separated in job_id.
    job_ids = [job_id for value in request.query.getall("job_id", []) for job_id in value.split(",") if job_id]
    endpoint_store(request).ping(request.match_info["worker_id"], job_ids, healthy=healthy)
    return web.json_response({})


def routes() -> list[web.RouteDef]:
    base = "/v2/{endpoint_id}"
    return [
        web.get(f"{base}/job-take/{{worker_id}}", _job_take),
        web.get(f"{base}/job-take-batch/{{worker_id}}", _job_take_batch),
        web.get(f"{base}/job-stop/{{worker_id}}", _job_stop),
        web.post(f"{base}/job-done/{{worker_id}}/{{job_id}}", _job_done),
        web.post(f"{base}/job-stream/{{worker_id}}/{{job_id}}", _job_stream),
        web.get(f"{base}/ping/{{worker_id}}", _ping),
    ]
