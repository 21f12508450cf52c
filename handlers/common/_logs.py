"""The one JSON log format of both halves, and the one redaction every line goes through.

Schema (``LOG_KEYS``, then any ``extra=`` fields): ``ts`` (ISO-8601 UTC, milliseconds), ``level``, ``logger``,
``message``, ``job_id`` and ``prompt_id`` when known, ``exception`` when there is one. Ops query worker and dispatch
logs with the same keys.

The job and prompt ids travel in context variables (:func:`job_context`), so every record logged while a job runs
carries them - including records from libraries. :class:`RedactingFilter` runs on the handler, after formatting
arguments are merged, so nothing reaches the output unredacted whatever logger produced it; extra fields are
redacted too, and a field named like a secret (``api_key``, ``token``, ``authorization`` ...) is never printed.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final

__all__ = [
    "LOG_KEYS",
    "JsonFormatter",
    "RedactingFilter",
    "job_context",
    "redact",
    "register_secret",
    "set_prompt_id",
]

#: The keys every line may carry besides its ``extra=`` fields (``ts``, ``level``, ``logger``, ``message`` always).
LOG_KEYS: Final = ("ts", "level", "logger", "message", "job_id", "prompt_id", "exception")

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("relay_job_id", default=None)
_prompt_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("relay_prompt_id", default=None)
#: Exact values never to print (webhook secrets of running jobs); weakly bounded so it cannot grow forever.
_SECRETS: set[str] = set()
_MAX_SECRETS: Final = 1024

# Names of secrets, not one:
_HIDDEN_NAMES: Final = (
    r"secret|password|passwd|api[_-]?key|access[_-]?key|secret[_-]?key|authorization|aws_secret_access_key|"
    r"session[_-]?token|token"
)
_SECRET_FIELD: Final = re.compile(rf"(?i)(?:{_HIDDEN_NAMES})")
_REPLACEMENTS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Presigned URL signatures and credentials, and anything shaped like a key=value secret.
    (re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s\"']+"), r"\1<redacted>"),
    (re.compile(r"(?i)((?:Signature|AWSAccessKeyId|token|sig)=)[^&\s\"']+"), r"\1<redacted>"),
    (
        re.compile(rf"(?i)([\"']?(?:{_HIDDEN_NAMES})[\"']?\s*[:=]\s*[\"']?)(?:Bearer\s+)?[^\s\"',}}&]+"),
        r"\1<redacted>",
    ),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "<aws-key-id>"),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]{8,}"), "Bearer <redacted>"),
    # data: URIs, then any long run of base64 alphabet: media payloads never belong in a log.
    (re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,[A-Za-z0-9+/=\s]+"), "<data-uri>"),
    (re.compile(r"[A-Za-z0-9+/]{120,}={0,2}"), "<base64 blob>"),
)


def register_secret(value: str | None) -> None:
    """Redact this exact value from every later log line (a job's webhook secret, a resolved API key)."""
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


def _scrub(key: str, value: Any) -> Any:
    """An ``extra=`` field as JSON, redacted: strings through :func:`redact`, containers field by field."""
    if _SECRET_FIELD.search(key) and value not in (None, ""):
        return "<redacted>"
    if isinstance(value, bool | int | float | type(None)):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _scrub(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub("", v) for v in value]
    return redact(str(value))


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
    """One JSON object per line in the schema of :data:`LOG_KEYS`, extras after them, everything redacted."""

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
            if key not in _STANDARD and not key.startswith("_") and not (key in entry and value is None):
                entry[key] = _scrub(key, value)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
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
