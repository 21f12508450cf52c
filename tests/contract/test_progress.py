"""Progress events, the progress webhook payload, and HMAC signing / verification."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from handlers.contract import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    OutputItem,
    OutputKind,
    OutputReadyEvent,
    ProgressEvent,
    ProgressWebhookPayload,
    RelayEvent,
    SignatureError,
    sign_webhook,
    verify_webhook,
    webhook_signature,
)

SECRET = "s3cr3t-s3cr3t-s3cr3t"
BODY = b'{"job_id":"j1","seq":1}'
NOW = 1_800_000_000


def test_progress_event_round_trip() -> None:
    event = ProgressEvent(
        job_id="j1",
        prompt_id="p",
        percent=42.5,
        node_id="3",
        node_title="KSampler",
        class_type="KSampler",
        step=5,
        step_max=20,
        elapsed_ms=1200,
        eta_ms=3000,
    )
    data = event.model_dump(mode="json")
    assert data["type"] == "progress"
    assert TypeAdapter(RelayEvent).validate_python(data) == event


@pytest.mark.parametrize("percent", [-0.1, 100.1])
def test_percent_is_bounded(percent: float) -> None:
    with pytest.raises(ValidationError):
        ProgressEvent(job_id="j", percent=percent, elapsed_ms=0)


def test_output_ready_event_carries_an_output_item() -> None:
    item = OutputItem(node_id="9", kind=OutputKind.IMAGE, mime="image/png", s3_uri="s3://b/k.png", bytes=10)
    event = OutputReadyEvent(job_id="j1", output=item, elapsed_ms=5)
    parsed = TypeAdapter(RelayEvent).validate_python(event.model_dump(mode="json"))
    assert isinstance(parsed, OutputReadyEvent) and parsed.output == item


def test_webhook_payload_discriminates_events() -> None:
    payload = ProgressWebhookPayload.model_validate(
        {
            "job_id": "j",
            "seq": 3,
            "sent_at_ms": 1,
            "event": {"type": "progress", "job_id": "j", "percent": 1, "elapsed_ms": 0},
        }
    )
    assert isinstance(payload.event, ProgressEvent) and payload.version == 1
    with pytest.raises(ValidationError):
        ProgressWebhookPayload.model_validate({"job_id": "j", "seq": 3, "sent_at_ms": 1, "event": {"type": "nope"}})


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert webhook_signature(SECRET, NOW, BODY) == f"v1={expected}"
    assert sign_webhook(SECRET, BODY, NOW) == {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"v1={expected}"}


def test_signed_request_verifies_with_any_header_case() -> None:
    headers = {k.lower(): v for k, v in sign_webhook(SECRET, BODY, NOW).items()}
    assert verify_webhook(SECRET, headers, BODY, now=NOW + 10) == NOW


def test_bytes_secret_equals_str_secret() -> None:
    assert webhook_signature(SECRET.encode(), NOW, BODY) == webhook_signature(SECRET, NOW, BODY)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({**h, TIMESTAMP_HEADER: str(NOW + 1)}, b), "does not match"),
        (lambda h, b: ({TIMESTAMP_HEADER: h[TIMESTAMP_HEADER]}, b), "missing"),
        (lambda h, b: ({SIGNATURE_HEADER: h[SIGNATURE_HEADER]}, b), "missing"),
        (lambda h, b: ({**h, TIMESTAMP_HEADER: "soon"}, b), "not an integer"),
        (lambda h, b: ({**h, SIGNATURE_HEADER: "v0=abc"}, b), "no v1="),
    ],
)
def test_tampered_requests_fail(mutate: object, reason: str) -> None:
    headers, body = mutate(sign_webhook(SECRET, BODY, NOW), BODY)  # type: ignore[operator]
    with pytest.raises(SignatureError, match=reason):
        verify_webhook(SECRET, headers, body, now=NOW)


def test_wrong_secret_fails() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify_webhook("another-secret-entirely", sign_webhook(SECRET, BODY, NOW), BODY, now=NOW)


@pytest.mark.parametrize("skew", [301, -301])
def test_stale_or_future_timestamps_fail(skew: int) -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        verify_webhook(SECRET, sign_webhook(SECRET, BODY, NOW), BODY, now=NOW + skew)


def test_tolerance_is_configurable() -> None:
    assert verify_webhook(SECRET, sign_webhook(SECRET, BODY, NOW), BODY, now=NOW + 1000, tolerance_s=1000) == NOW


def test_secret_rotation_both_ways() -> None:
    old, new = "old-secret-old-secret", "new-secret-new-secret"
    # The receiver knows both secrets while the sender still signs with the old one ...
    assert verify_webhook([new, old], sign_webhook(old, BODY, NOW), BODY, now=NOW) == NOW
    # ... or the sender sends both signatures while receivers move over.
    headers = sign_webhook(new, BODY, NOW)
    headers[SIGNATURE_HEADER] = f"{webhook_signature(old, NOW, BODY)}, {headers[SIGNATURE_HEADER]}"
    assert verify_webhook(old, headers, BODY, now=NOW) == NOW
    assert verify_webhook(new, headers, BODY, now=NOW) == NOW


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512), timestamp=st.integers(0, 2**40))
def test_any_signed_body_verifies_and_any_other_body_does_not(secret: bytes, body: bytes, timestamp: int) -> None:
    headers = sign_webhook(secret, body, timestamp)
    assert verify_webhook(secret, headers, body, now=timestamp) == timestamp
    with pytest.raises(SignatureError):
        verify_webhook(secret, headers, body + b"x", now=timestamp)
