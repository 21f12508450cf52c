"""The worker's logs: JSON lines keyed by job id and prompt id, with secrets and base64 blobs removed.

The job and prompt ids travel in context variables (:func:`job_context`), so every record logged while a job runs
carries them - including records from the ComfyUI client and boto3. :class:`RedactingFilter` runs on the handler,
after formatting arguments are merged, so nothing reaches the output unredacted whatever logger produced it.

The runpod SDK does not use ``logging``: its ``RunPodLogger`` prints its own lines, at DEBUG by default, job inputs
and outputs (presigned URLs with their signatures) included. :func:`route_sdk_logs` sends them through the same
path (logger ``runpod``: redacted, JSON) and keeps only its warnings and errors - the job loop's own DEBUG and INFO
lines are most of a worker's log and say nothing the worker's lines do not.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping
from typing import IO, Any, Final

__all__ = [
    "JsonFormatter",
    "RedactingFilter",
    "configure_logging",
    "job_context",
    "redact",
    "register_secret",
    "route_sdk_logs",
    "sdk_log_level",
    "set_prompt_id",
]

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("relay_job_id", default=None)
_prompt_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("relay_prompt_id", default=None)
#: Exact values never to print (webhook secrets of running jobs); weakly bounded so it cannot grow forever.
_SECRETS: set[str] = set()
_MAX_SECRETS: Final = 1024

_REPLACEMENTS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Presigned URL signatures and credentials, and anything shaped like a key=value secret.
    (re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s\"']+"), r"\1<redacted>"),
    (re.compile(r"(?i)((?:Signature|AWSAccessKeyId|token|sig)=)[^&\s\"']+"), r"\1<redacted>"),
    (
        re.compile(
            r"(?i)([\"']?(?:secret|password|passwd|api[_-]?key|access[_-]?key|secret[_-]?key|authorization|"
            r"aws_secret_access_key|session[_-]?token)[\"']?\s*[:=]\s*[\"']?)(?:Bearer\s+)?[^\s\"',}&]+"
        ),
        r"\1<redacted>",
    ),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "<aws-key-id>"),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]{8,}"), "Bearer <redacted>"),
    # data: URIs, then any long run of base64 alphabet: media payloads never belong in a log.
    (re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,[A-Za-z0-9+/=\s]+"), "<data-uri>"),
    (re.compile(r"[A-Za-z0-9+/]{120,}={0,2}"), "<base64 blob>"),
)


def register_secret(value: str | None) -> None:
    """Redact this exact value from every later log line (a job's webhook secret)."""
    if value and len(value) >= 4:
        if len(_SECRETS) >= _MAX_SECRETS:
            _SECRETS.clear()
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    for pattern, replacement in _REPLACEMENTS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites the record's message (arguments merged) and exception text through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None  # the redacted text replaces it
        return True


_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job and prompt ids, extras, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        job_id, prompt_id = _job_id.get(), _prompt_id.get()
        if job_id is not None:
            entry["job_id"] = job_id
        if prompt_id is not None:
            entry["prompt_id"] = prompt_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                plain = isinstance(value, int | float | bool | type(None))
                entry[key] = value if plain else redact(str(value))
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


@contextlib.contextmanager
def job_context(job_id: str | None, prompt_id: str | None = None) -> Iterator[None]:
    """Tag every record logged inside with the job (and prompt) id."""
    job_token = _job_id.set(job_id)
    prompt_token = _prompt_id.set(prompt_id)
    try:
        yield
    finally:
        _prompt_id.reset(prompt_token)
        _job_id.reset(job_token)


def set_prompt_id(prompt_id: str | None) -> None:
    _prompt_id.set(prompt_id)


#: The SDK's level names, as logging levels (``TIP`` is its advertising: dropped with the rest of the noise).
_SDK_LEVELS: Final = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}


def route_sdk_logs(sdk_logger: Any, level: int = logging.WARNING) -> None:
    """Make the SDK's ``RunPodLogger`` (a singleton every SDK module shares) log through ``logging`` instead of
    printing: logger ``runpod``, records below ``level`` dropped. Pass ``RunPodLogger()``."""
    target = logging.getLogger("runpod")

    def log(message: object, message_level: str = "INFO", job_id: str | None = None) -> None:
        record_level = _SDK_LEVELS.get(message_level, logging.INFO)
        if message_level == "TIP" or record_level < level:
            return
        extra = {"runpod_job_id": job_id} if job_id else {}
        target.log(record_level, "%s", message, extra=extra)

    # The instance attribute wins over the class's method for every module holding the singleton.
    sdk_logger.log = log


def sdk_log_level(environ: Mapping[str, str]) -> int:
    """The SDK's level: ``RUNPOD_LOG_LEVEL`` when ops set one (lines still redacted), else warnings."""
    return _SDK_LEVELS.get(environ.get("RUNPOD_LOG_LEVEL", "").strip().upper(), logging.WARNING)


def configure_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as redacted JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h.formatter, JsonFormatter)]
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO: on a worker that polls ComfyUI that is most of the log, and says nothing
    # a failure would not say better.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    return handler
