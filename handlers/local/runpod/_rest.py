"""RunPod's management REST API v1 (``https://rest.runpod.io/v1``), the routes ``comfy-relay deploy runpod`` uses:
templates and serverless endpoints, created, listed, read, updated (``PATCH`` and ``POST .../update``) and deleted,
with ``Authorization: Bearer <API key>``. An endpoint created here is served at ``/v2/{id}/`` at once, so a worker
can take its jobs. Point ``RUNPOD_REST_URL`` at ``http://host:port/v1``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from handlers.local.runpod._http import BodyError, error, platform, read_json
from handlers.local.runpod._management import ManagementError, NotFoundError

__all__ = ["routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_BODY = 1024 * 1024


def _guarded(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        emulator = platform(request)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() != emulator.config.api_key:
            return error(401, "unauthorized: send 'Authorization: Bearer <your API key>'")
        try:
            return await handler(request)
        except BodyError as exc:
            return exc.response
        except ManagementError as exc:
            return error(400, str(exc))
        except NotFoundError as exc:
            return error(404, str(exc))

    return guarded


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


@_guarded
async def _list_templates(request: web.Request) -> web.StreamResponse:
    return web.json_response(list(platform(request).management.templates.values()))


@_guarded
async def _create_template(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, _MAX_BODY)
    return web.json_response(platform(request).management.create_template(body))


@_guarded
async def _get_template(request: web.Request) -> web.StreamResponse:
    return web.json_response(platform(request).management.template(request.match_info["template_id"]))


@_guarded
async def _update_template(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, _MAX_BODY)
    return web.json_response(platform(request).management.update_template(request.match_info["template_id"], body))


@_guarded
async def _delete_template(request: web.Request) -> web.StreamResponse:
    platform(request).management.delete_template(request.match_info["template_id"])
    return web.Response(status=204)


@_guarded
async def _list_endpoints(request: web.Request) -> web.StreamResponse:
    management = platform(request).management
    include = _flag(request, "includeTemplate")
    return web.json_response([management.endpoint(i, include_template=include) for i in management.endpoints])


@_guarded
async def _create_endpoint(request: web.Request) -> web.StreamResponse:
    emulator = platform(request)
    endpoint = emulator.management.create_endpoint(await read_json(request, _MAX_BODY))
    emulator.add_endpoint(endpoint["id"])
    return web.json_response(endpoint)


@_guarded
async def _get_endpoint(request: web.Request) -> web.StreamResponse:
    management = platform(request).management
    include = _flag(request, "includeTemplate")
    return web.json_response(management.endpoint(request.match_info["endpoint_id"], include_template=include))


@_guarded
async def _update_endpoint(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, _MAX_BODY)
    return web.json_response(platform(request).management.update_endpoint(request.match_info["endpoint_id"], body))


@_guarded
async def _delete_endpoint(request: web.Request) -> web.StreamResponse:
    emulator = platform(request)
    emulator.management.delete_endpoint(request.match_info["endpoint_id"])
    emulator.remove_endpoint(request.match_info["endpoint_id"])
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/templates", _list_templates),
        web.post("/v1/templates", _create_template),
        web.get("/v1/templates/{template_id}", _get_template),
        web.patch("/v1/templates/{template_id}", _update_template),
        web.post("/v1/templates/{template_id}/update", _update_template),
        web.delete("/v1/templates/{template_id}", _delete_template),
        web.get("/v1/endpoints", _list_endpoints),
        web.post("/v1/endpoints", _create_endpoint),
        web.get("/v1/endpoints/{endpoint_id}", _get_endpoint),
        web.patch("/v1/endpoints/{endpoint_id}", _update_endpoint),
        web.post("/v1/endpoints/{endpoint_id}/update", _update_endpoint),
        web.delete("/v1/endpoints/{endpoint_id}", _delete_endpoint),
    ]
