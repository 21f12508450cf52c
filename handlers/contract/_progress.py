"""Progress events (streamed to RunPod and POSTed to the caller's progress webhook) and webhook signing.

A progress webhook request carries ``X-Relay-Timestamp: <unix seconds>`` and
``X-Relay-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``. Several ``v1=`` values separated by
commas may be sent while a secret rotates; any one matching is enough. Receivers reject stale timestamps so a
captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import Field

from handlers.contract._common import StrictModel
from handlers.contract._result import OutputItem

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "OutputReadyEvent",
    "ProgressEvent",
    "ProgressWebhookPayload",
    "RelayEvent",
    "SignatureError",
    "sign_webhook",
    "verify_webhook",
    "webhook_signature",
]

TIMESTAMP_HEADER = "X-Relay-Timestamp"
SIGNATURE_HEADER = "X-Relay-Signature"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


class ProgressEvent(StrictModel):
    """Where the job is: percent over the whole graph, the running node, its sampler step, elapsed and ETA."""

    type: Literal["progress"] = "progress"
    job_id: str
    prompt_id: str | None = None
    percent: float = Field(ge=0, le=100)
    node_id: str | None = None
    node_title: str | None = None
    class_type: str | None = None
    step: int | None = Field(default=None, ge=0)
    step_max: int | None = Field(default=None, ge=0)
    elapsed_ms: int = Field(ge=0)
    eta_ms: int | None = Field(default=None, ge=0)


class OutputReadyEvent(StrictModel):
    """An output node finished and its file is stored: the caller may show it before the job ends."""

    type: Literal["output"] = "output"
    job_id: str
    prompt_id: str | None = None
    output: OutputItem
    elapsed_ms: int = Field(ge=0)


RelayEvent = Annotated[ProgressEvent | OutputReadyEvent, Field(discriminator="type")]


class ProgressWebhookPayload(StrictModel):
    """The JSON body POSTed to ``progress_webhook.url``. ``seq`` increases per job so receivers can drop late or
    duplicated deliveries."""

    version: Literal[1] = 1
    job_id: str
    seq: int = Field(ge=0)
    sent_at_ms: int = Field(ge=0)
    event: RelayEvent


class SignatureError(ValueError):
    """A progress webhook request failed authentication (reason in the message)."""


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def webhook_signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """``v1=<hex>``: HMAC-SHA256 over ``"<timestamp>.<body>"``."""
    digest = hmac.new(_as_bytes(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def sign_webhook(secret: str | bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers to send with ``body``; ``timestamp`` is the current unix time in seconds (given, to stay pure)."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: webhook_signature(secret, timestamp, body)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_webhook(
    secrets: str | bytes | Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a request signed by :func:`sign_webhook` against one or more secrets (rotation) and return its
    timestamp; raise :class:`SignatureError` if it is missing, malformed, stale or signed with another secret."""
    raw_timestamp = _header(headers, TIMESTAMP_HEADER)
    raw_signature = _header(headers, SIGNATURE_HEADER)
    if raw_timestamp is None or raw_signature is None:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    try:
        timestamp = int(raw_timestamp.strip())
    except ValueError as exc:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not an integer") from exc
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"timestamp is {now - timestamp} s away from now (tolerance {tolerance_s} s)")
    offered = [part.strip() for part in raw_signature.split(",") if part.strip().startswith(f"{SIGNATURE_VERSION}=")]
    if not offered:
        raise SignatureError(f"{SIGNATURE_HEADER} has no {SIGNATURE_VERSION}= signature")
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    expected = [webhook_signature(key, timestamp, body) for key in keys]
    # compare_digest on every pair: no early exit that would leak which secret or prefix matched.
    matched = False
    for candidate in offered:
        for signature in expected:
            matched |= hmac.compare_digest(candidate.encode(), signature.encode())
    if not matched:
        raise SignatureError("signature does not match")
    return timestamp
