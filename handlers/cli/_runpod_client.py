"""A small async client of RunPod's serverless API for the CLI: ``/run``, ``/status``, ``/stream``, ``/cancel``,
``/health``. Real endpoints and the local emulator speak the same API; only the base URL and key differ.

(Dispatch's client is synchronous and built for Lambda retries; the CLI wants asyncio and ``/stream``.)
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

__all__ = [
    "DEFAULT_API_BASE",
    "TERMINAL_STATUSES",
    "EndpointTarget",
    "RunPodApiError",
    "RunPodCli",
]

DEFAULT_API_BASE = "https://api.runpod.ai/v2"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


class RunPodApiError(RuntimeError):
    """RunPod answered with an error status (or could not be reached: ``status`` is None)."""

    def __init__(self, message: str, status: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class EndpointTarget:
    """Where jobs go: the API base (``.../v2``), the endpoint id and the API key."""

    api_base: str
    endpoint_id: str
    api_key: str = field(repr=False)  # a repr lands in logs and tracebacks; the key must not
    local: bool = False

    @classmethod
    def from_env(cls, endpoint_id: str, environ: Mapping[str, str] | None = None) -> EndpointTarget:
        env = os.environ if environ is None else environ
        key = env.get("RUNPOD_API_KEY", "").strip()
        if not key:
            raise RunPodApiError("RUNPOD_API_KEY is not set: the API key of your RunPod account is needed")
        base = env.get("RUNPOD_API_BASE", "").strip() or DEFAULT_API_BASE
        host = urllib.parse.urlsplit(base).hostname
        return cls(api_base=base.rstrip("/"), endpoint_id=endpoint_id, api_key=key, local=host in _LOOPBACK)

    @classmethod
    def from_stack_env(cls, env: Mapping[str, str]) -> EndpointTarget:
        """The local stack's RunPod emulator, from the client environment the stack writes to its state."""
        return cls(
            api_base=env["RUNPOD_API_BASE"],
            endpoint_id=env["RUNPOD_ENDPOINT_ID"],
            api_key=env["RUNPOD_API_KEY"],
            local=True,
        )

    @property
    def url(self) -> str:
        return f"{self.api_base}/{self.endpoint_id}"


def _detail(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _said(body: object) -> str:
    """What an error body says, as text: its ``error`` (RunPod's shape), else its JSON, never a Python repr."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return body if isinstance(body, str) else json.dumps(body)


class RunPodCli:
    """``async with RunPodCli(target) as api: job_id = await api.run({...})``."""

    def __init__(self, target: EndpointTarget, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.target = target
        self._http = httpx.AsyncClient(
            transport=transport,
            headers={"Authorization": f"Bearer {target.api_key}"},
            timeout=httpx.Timeout(30.0, connect=10.0),
            # A local stack must be reached directly; a real endpoint goes through whatever proxy is configured.
            trust_env=not target.local,
        )

    async def _call(self, method: str, path: str, json: object = None) -> dict[str, Any]:
        url = f"{self.target.url}/{path}"
        try:
            response = await self._http.request(method, url, json=json)
        except httpx.HTTPError as exc:
            raise RunPodApiError(f"{method} {url}: {exc or type(exc).__name__}") from exc
        if response.status_code >= 400:
            body = _detail(response)
            hint = " (check RUNPOD_API_KEY)" if response.status_code in (401, 403) else ""
            if response.status_code == 404 and path.startswith(("status/", "cancel/", "stream/")):
                message = f"RunPod endpoint {self.target.url} has no job {path.partition('/')[2]}"
            else:
                message = f"{method} {url}: HTTP {response.status_code}{hint}: {_said(body)}"
            raise RunPodApiError(message, response.status_code, body)
        answer = _detail(response)
        if not isinstance(answer, dict):
            raise RunPodApiError(f"{method} {url}: expected a JSON object, got {answer!r}", response.status_code)
        return answer

    async def run(self, job_input: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """POST /run: ``{"id", "status"}``. ``extra``: ``webhook``, ``policy``."""
        return await self._call("POST", "run", {"input": dict(job_input), **extra})

    async def status(self, job_id: str) -> dict[str, Any]:
        return await self._call("GET", f"status/{job_id}")

    async def stream(self, job_id: str) -> dict[str, Any]:
        """What the worker streamed since the last call: ``{"status", "stream": [{"output": ...}, ...]}``."""
        return await self._call("GET", f"stream/{job_id}")

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return await self._call("POST", f"cancel/{job_id}")

    async def health(self) -> dict[str, Any]:
        return await self._call("GET", "health")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RunPodCli:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
