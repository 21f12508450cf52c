"""Request and response helpers shared by the emulator's routes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from handlers.local.runpod._jobs import JobStore
from handlers.local.runpod._platform import Platform

__all__ = ["PLATFORM", "BodyError", "authorized", "endpoint_store", "error", "platform", "read_json"]

PLATFORM = web.AppKey("runpod_platform", Platform)


class BodyError(Exception):
    """The request body is too large or not JSON; carries the answer to send."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


def platform(request: web.Request) -> Platform:
    return request.app[PLATFORM]


def endpoint_store(request: web.Request) -> JobStore:
    """The jobs of the endpoint in the URL (the route's guard has checked that it exists)."""
    return platform(request).stores[request.match_info["endpoint_id"]]


def error(status: int, message: str) -> web.Response:
    """RunPod's error shape: ``{"error": "..."}``."""
    return web.json_response({"error": message}, status=status)


def authorized(request: web.Request, key: str) -> bool:
    """RunPod's docs show both ``Authorization: Bearer KEY`` and the raw key; the worker SDK sends the raw key."""
    header = request.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    return header == key or (scheme.lower() == "bearer" and rest.strip() == key)


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed body, whatever the content type (the SDK posts JSON as form-urlencoded). Over ``limit`` bytes:
    400, the code RunPod answered an oversized result with (runpod-workers/worker-comfyui#129)."""
    if request.content_length is not None and request.content_length > limit:
        response = error(400, f"payload too large: {request.content_length} bytes, the limit is {limit}")
        # The unread body is still on the wire: close the connection rather than keep it for the next request.
        response.force_close()
        raise BodyError(response)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyError(error(400, f"payload too large: the limit is {limit} bytes")) from exc
    if len(raw) > limit:
        raise BodyError(error(400, f"payload too large: {len(raw)} bytes, the limit is {limit}"))
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(error(400, f"request body is not valid JSON: {exc}")) from exc
