"""``on_webhook``: the HTTP face of dispatch (Lambda Function URL / API Gateway v2 events).

- ``POST /webhooks/runpod?token=...``: RunPod's (unsigned) completion webhook. The token is compared in constant
  time; the body is only a hint, ``/status`` decides. 503 on transient trouble so RunPod retries.
- ``POST /webhooks/progress``: the worker's progress events, HMAC-signed with a timestamp (replays outside the
  tolerance window are refused; late or duplicated ``seq`` are ignored).
- ``GET /jobs/{job_id}``: the job record for callers, with ``Authorization: Bearer <RELAY_API_TOKEN>``.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs

from pydantic import ValidationError

from handlers.contract import ProgressWebhookPayload, SignatureError, is_job_id, verify_webhook
from handlers.dispatch._errors import TransientError, UsageError
from handlers.dispatch._events import HttpEvent, http_response
from handlers.dispatch._jobs import JobService
from handlers.dispatch._logging import LOGGER_NAME, log_event

__all__ = ["WebhookHandler"]

_JOB_PATH: Final = re.compile(r"^/jobs/(?P<job_id>[^/]+)/?$")
_MAX_BODY: Final = 1_000_000


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class WebhookHandler:
    service: JobService
    webhook_token: str = field(repr=False)
    progress_secrets: Sequence[str] = field(repr=False)
    api_token: str = field(repr=False)
    tolerance_s: int = 300
    clock_s: Callable[[], float] = time.time

    def __call__(self, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            request = HttpEvent.model_validate(event)
        except ValidationError:
            return http_response(400, {"error": "not an HTTP event"})
        path, method = request.path.rstrip("/") or "/", request.method
        try:
            if path == "/webhooks/runpod":
                return self._only(method, "POST") or self._runpod(request)
            if path == "/webhooks/progress":
                return self._only(method, "POST") or self._progress(request)
            match = _JOB_PATH.match(path)
            if match:
                return self._only(method, "GET") or self._job(request, match["job_id"])
        except TransientError as exc:
            log_event(logging.WARNING, "webhook failed transiently", None, path=path, reason=str(exc))
            return http_response(503, {"error": "temporarily unavailable, retry"})
        except UsageError as exc:
            log_event(logging.ERROR, "webhook failed: misconfiguration", None, path=path, reason=str(exc))
            return http_response(500, {"error": "internal error"})
        except Exception:
            logging.getLogger(LOGGER_NAME).exception("webhook crashed", extra={"path": path})
            return http_response(500, {"error": "internal error"})
        return http_response(404, {"error": "not found"})

    @staticmethod
    def _only(method: str, allowed: str) -> dict[str, Any] | None:
        return None if method == allowed else http_response(405, {"error": f"use {allowed}"})

    @staticmethod
    def _query(request: HttpEvent, name: str) -> str | None:
        if name in request.query_string_parameters:
            return request.query_string_parameters[name]
        values = parse_qs(request.raw_query_string).get(name)
        return values[0] if values else None

    def _runpod(self, request: HttpEvent) -> dict[str, Any]:
        if not _same(self._query(request, "token"), self.webhook_token):
            log_event(logging.WARNING, "RunPod webhook with a bad token refused", None)
            return http_response(401, {"error": "unauthorized"})
        try:
            payload = json.loads(request.body_bytes())
        except ValueError:
            return http_response(400, {"error": "body is not JSON"})
        record = self.service.handle_runpod_webhook(payload)
        if record is None:
            return http_response(200, {"ok": False, "reason": "unknown job"})
        return http_response(200, {"ok": True, "job_id": record.job_id, "state": record.state.value})

    def _progress(self, request: HttpEvent) -> dict[str, Any]:
        body = request.body_bytes()
        if len(body) > _MAX_BODY:
            return http_response(413, {"error": "body too large"})
        try:
            verify_webhook(self.progress_secrets, request.headers, body, int(self.clock_s()), self.tolerance_s)
        except SignatureError as exc:
            log_event(logging.WARNING, "progress webhook refused", None, reason=str(exc))
            return http_response(401, {"error": "unauthorized"})
        try:
            payload = ProgressWebhookPayload.model_validate_json(body)
        except ValidationError:
            return http_response(400, {"error": "not a progress event"})
        record = self.service.handle_progress(payload)
        state = record.state.value if record is not None else None
        return http_response(200, {"ok": record is not None, "state": state})

    def _job(self, request: HttpEvent, job_id: str) -> dict[str, Any]:
        authorization = request.header("authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not _same(token.strip(), self.api_token):
            response = http_response(401, {"error": "unauthorized"})
            response["headers"]["WWW-Authenticate"] = 'Bearer realm="comfy-relay"'
            return response
        if not is_job_id(job_id):
            return http_response(404, {"error": "not found"})
        record = self.service.store.get(job_id)
        if record is None:
            return http_response(404, {"error": "not found"})
        return http_response(200, record.model_dump(mode="json", exclude_none=True))
