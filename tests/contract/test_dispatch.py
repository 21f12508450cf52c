"""Dispatch models: QueueMessage, the job state machine, JobRecord and RunPod's status body."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from handlers.contract import (
    INITIAL_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    ErrorCode,
    JobError,
    JobInput,
    JobRecord,
    JobState,
    QueueMessage,
    RunPodJobStatus,
    RunPodStatus,
    can_transition,
    derive_job_id,
    input_digest,
    is_terminal,
    state_for_runpod,
    validation_problems,
)

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}


def message(**extra: Any) -> dict[str, Any]:
    return {"input": {"workflow": GRAPH}, **extra}


def test_minimal_message() -> None:
    msg = QueueMessage.model_validate(message())
    assert msg.job_id is None and msg.priority == "normal" and msg.policy is None and msg.notify is None
    assert msg.runpod_policy() == {}


def test_job_id_resolution_order() -> None:
    assert QueueMessage.model_validate(message(job_id="outer")).resolved_job_id("m-1") == "outer"
    inner = {"input": {"workflow": GRAPH, "job_id": "inner"}}
    assert QueueMessage.model_validate(inner).resolved_job_id("m-1") == "inner"
    assert QueueMessage.model_validate(message()).resolved_job_id("0c1d3f0e-aaaa") == "0c1d3f0e-aaaa"


def test_conflicting_job_ids_are_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        QueueMessage.model_validate({"job_id": "a", "input": {"workflow": GRAPH, "job_id": "b"}})
    assert [(p.path, p.message) for p in validation_problems(info.value, root="message")] == [
        ("message.job_id", "differs from input.job_id ('b')")
    ]


def test_derive_job_id_is_stable_and_safe() -> None:
    assert derive_job_id("abc-123") == "abc-123"
    derived = derive_job_id("weird id/with:chars")
    assert derived == derive_job_id("weird id/with:chars")
    assert derived.startswith("msg-") and derived.replace("-", "").isalnum()


def test_policy_bounds_and_runpod_names() -> None:
    msg = QueueMessage.model_validate(message(priority="low", policy={"executionTimeout": 900_000, "ttl": 3_600_000}))
    assert msg.runpod_policy() == {"executionTimeout": 900_000, "ttl": 3_600_000, "lowPriority": True}
    with pytest.raises(ValidationError) as info:
        QueueMessage.model_validate(message(policy={"executionTimeout": 4_999, "ttl": 8 * 86_400_000}))
    assert {p.path for p in validation_problems(info.value, root="message")} == {
        "message.policy.executionTimeout",
        "message.policy.ttl",
    }


def test_notify_needs_a_target_and_a_secret_for_webhooks() -> None:
    ok = QueueMessage.model_validate(
        message(notify={"sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/done"})
    )
    assert ok.notify is not None
    with pytest.raises(ValidationError) as info:
        QueueMessage.model_validate(message(notify={}))
    assert validation_problems(info.value)[0].message == "give webhook_url, sqs_queue_url or both"
    with pytest.raises(ValidationError) as info:
        QueueMessage.model_validate(message(notify={"webhook_url": "https://x.test/h"}))
    assert validation_problems(info.value)[0].path == "input.notify.webhook_secret"


def test_bad_input_problems_carry_the_nested_path() -> None:
    with pytest.raises(ValidationError) as info:
        QueueMessage.model_validate({"input": {"workflow": GRAPH, "timeout_s": 0}, "priority": "urgent"})
    paths = {p.path for p in validation_problems(info.value, root="message")}
    assert paths == {"message.input.timeout_s", "message.priority"}


def test_runpod_input_pins_the_job_id() -> None:
    msg = QueueMessage.model_validate(message())
    body = msg.runpod_input("job-7")
    assert body == {"workflow": GRAPH, "job_id": "job-7"}
    assert JobInput.model_validate(body).job_id == "job-7"


def test_input_digest_ignores_job_id_and_legacy_spelling() -> None:
    png = "aGVsbG8="
    a = JobInput.model_validate({"workflow": GRAPH, "media": [{"name": "x.png", "base64": png}], "job_id": "a"})
    b = JobInput.model_validate({"workflow": GRAPH, "images": [{"name": "x.png", "image": png}], "job_id": "b"})
    c = JobInput.model_validate({"workflow": GRAPH, "params": {"p": 1}})
    assert input_digest(a) == input_digest(b)
    assert input_digest(a) != input_digest(c)
    assert input_digest(a).startswith("sha256:")


# -- state machine -------------------------------------------------------------------------------------------------


def test_terminal_states_never_move() -> None:
    assert {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMED_OUT,
        JobState.REJECTED,
    } == TERMINAL_STATES
    for terminal in TERMINAL_STATES:
        assert is_terminal(terminal)
        for target in JobState:
            assert not can_transition(terminal, target)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ACCEPTED", "SUBMITTED"),
        ("ACCEPTED", "REJECTED"),
        ("ACCEPTED", "ACCEPTED"),  # a submitter claims the job, or records a failed submission attempt
        ("SUBMITTED", "RUNNING"),
        ("SUBMITTED", "SUCCEEDED"),
        ("SUBMITTED", "SUBMITTED"),
        ("RUNNING", "RUNNING"),
        ("RUNNING", "SUCCEEDED"),
        ("RUNNING", "FAILED"),
        ("RUNNING", "CANCELLED"),
        ("RUNNING", "TIMED_OUT"),
        ("RUNNING", "SUBMITTED"),
    ],
)
def test_allowed_transitions(a: str, b: str) -> None:
    assert can_transition(JobState(a), JobState(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ACCEPTED", "RUNNING"),
        ("ACCEPTED", "SUCCEEDED"),
        ("SUBMITTED", "ACCEPTED"),
        ("SUBMITTED", "REJECTED"),
        ("RUNNING", "ACCEPTED"),
        ("RUNNING", "REJECTED"),
    ],
)
def test_forbidden_transitions(a: str, b: str) -> None:
    assert not can_transition(JobState(a), JobState(b))


def test_every_state_has_an_entry_and_is_reachable() -> None:
    assert set(TRANSITIONS) == set(JobState)
    reachable = set(INITIAL_STATES)
    frontier = list(INITIAL_STATES)
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(JobState)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("IN_QUEUE", JobState.SUBMITTED),
        ("IN_PROGRESS", JobState.RUNNING),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETED", JobState.SUCCEEDED),
        ("FAILED", JobState.FAILED),
        ("CANCELLED", JobState.CANCELLED),
        ("TIMED_OUT", JobState.TIMED_OUT),
    ],
)
def test_runpod_status_mapping(status: str, state: JobState) -> None:
    assert state_for_runpod(status) is state


# -- records and RunPod bodies -----------------------------------------------------------------------------------


def test_job_record_round_trip() -> None:
    record = JobRecord(
        job_id="j",
        state=JobState.RUNNING,
        attempt=1,
        runpod_id="rp-1",
        input_digest="sha256:00",
        created_at_ms=1,
        updated_at_ms=2,
        progress={"percent": 50, "updated_at_ms": 2},  # type: ignore[arg-type]
        error=JobError(code=ErrorCode.LOST, message="worker gone"),
        expires_at=100,
    )
    again = JobRecord.model_validate(record.model_dump(mode="json"))
    assert again == record and again.version == 0 and again.error is not None and again.error.retryable


def test_runpod_status_completed() -> None:
    body = {
        "id": "rp-1",
        "status": "COMPLETED",
        "delayTime": 824,
        "executionTime": 3391,
        "output": {"job_id": "j"},
        "workerId": "w-1",
    }
    status = RunPodJobStatus.model_validate(body)
    assert status.job_state is JobState.SUCCEEDED
    assert status.delay_time_ms == 824 and status.execution_time_ms == 3391
    assert status.error() is None
    assert status.model_extra == {"workerId": "w-1"}


def test_runpod_status_failed_with_our_details() -> None:
    error = JobError(code=ErrorCode.COMFYUI_CRASHED, message="exit 137")
    body = error.to_runpod()
    status = RunPodJobStatus.model_validate(
        {"id": "x", "status": "FAILED", "error": body["error"], "output": {"details": body["details"]}}
    )
    assert status.error() == error


def test_runpod_status_failed_from_an_sdk_crash() -> None:
    status = RunPodJobStatus.model_validate({"id": "x", "status": "FAILED", "error": '{"error_type": "boom"}'})
    parsed = status.error()
    assert parsed is not None and parsed.code is ErrorCode.INTERNAL


@pytest.mark.parametrize(("status", "code"), [("TIMED_OUT", ErrorCode.TIMED_OUT), ("CANCELLED", ErrorCode.CANCELLED)])
def test_runpod_status_platform_endings(status: str, code: ErrorCode) -> None:
    parsed = RunPodJobStatus.model_validate({"id": "x", "status": status}).error()
    assert parsed is not None and parsed.code is code


def test_unknown_runpod_status_is_rejected() -> None:
    with pytest.raises(ValidationError):
        RunPodJobStatus.model_validate({"id": "x", "status": "EXPLODED"})
    assert RunPodStatus("IN_QUEUE") is RunPodStatus.IN_QUEUE


def test_runpod_status_reads_both_worker_modes() -> None:
    result = {"job_id": "j", "outputs": [{"node_id": "9", "kind": "image"}]}
    plain = RunPodJobStatus.model_validate({"id": "x", "status": "COMPLETED", "output": result})
    streamed = RunPodJobStatus.model_validate(
        {"id": "x", "status": "COMPLETED", "output": [{"type": "progress", "percent": 50}, result]}
    )
    for status in (plain, streamed):
        parsed = status.result()
        assert parsed is not None and parsed.job_id == "j"
        assert [o.node_id for o in status.outputs()] == ["9"]
    # A stream that ended without a result: its output events are the outputs.
    events = [{"type": "output", "output": {"node_id": "4", "kind": "video"}}]
    assert [o.node_id for o in RunPodJobStatus(status=RunPodStatus.COMPLETED, output=events).outputs()] == ["4"]
    error = JobError(code=ErrorCode.WORKFLOW_INVALID, message="bad", job_id="j")
    chunks = [{"type": "progress", "percent": 5.0}, {"type": "error", "details": error.to_runpod()["details"]}]
    failed = RunPodJobStatus.model_validate({"id": "x", "status": "FAILED", "output": chunks, "error": "x: y"})
    assert failed.error() == error and failed.error_text == "x: y" and failed.result() is None
