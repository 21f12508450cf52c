"""The job state machine against the in-memory store and RunPod (no network): every path of accept, submit,
outcome, progress and reconcile."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.contract import (
    ErrorCode,
    JobError,
    JobQa,
    JobState,
    NodeError,
    ProgressEvent,
    ProgressWebhookPayload,
    QaAttempt,
    QaFailure,
    QaPolicy,
    QaVerdict,
    RunPodStatus,
)
from handlers.dispatch._errors import RunPodRateLimited, RunPodUnavailable
from handlers.dispatch._jobs import Disposition
from handlers.dispatch._notify import MemoryNotifier
from tests.dispatch.helpers import GRAPH, World, message, success_output


def test_accept_submits_once_and_records_submitted() -> None:
    world = World()
    assert world.service.handle_message("m-1", message("job-1")) is Disposition.DONE
    record = world.record("job-1")
    assert record.state is JobState.SUBMITTED
    assert record.attempt == 1
    assert record.runpod_id == "rp-0"
    body = world.runpod.jobs["rp-0"].body
    assert body["input"]["job_id"] == "job-1"
    assert body["webhook"] == "https://relay.example/webhooks/runpod?token=t"
    assert world.store.writes == [("job-1", JobState.ACCEPTED), ("job-1", JobState.SUBMITTED)]


def test_job_id_derived_from_message_id_and_policy_passed() -> None:
    world = World()
    text = message(None, priority="low", policy={"executionTimeout": 60_000, "ttl": 600_000})
    world.service.handle_message("b1f0c3a2-aaaa-bbbb-cccc-123456789abc", text)
    record = world.record("b1f0c3a2-aaaa-bbbb-cccc-123456789abc")
    assert record.state is JobState.SUBMITTED
    assert world.runpod.jobs["rp-0"].body["policy"] == {"executionTimeout": 60_000, "ttl": 600_000, "lowPriority": True}


def test_duplicate_delivery_does_nothing() -> None:
    world = World()
    world.service.handle_message("m-1", message("job-1"))
    for _ in range(3):
        assert world.service.handle_message("m-1", message("job-1"), receive_count=2) is Disposition.DONE
    assert len(world.runpod.runs) == 1
    assert world.record("job-1").version == 1


def test_same_id_with_another_input_is_dropped_without_touching_the_job() -> None:
    world = World()
    world.service.handle_message("m-1", message("job-1"))
    other = {**GRAPH, "1": {**GRAPH["1"], "inputs": {**GRAPH["1"]["inputs"], "width": 128}}}
    assert world.service.handle_message("m-2", message("job-1", graph=other)) is Disposition.DONE
    assert len(world.runpod.runs) == 1
    assert world.record("job-1").version == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", ErrorCode.INVALID_INPUT),
        (json.dumps({"job_id": "bad-1", "input": {"workflow": GRAPH, "params": {"1bad": 1}}}), ErrorCode.INVALID_INPUT),
        (json.dumps({"job_id": "bad-1", "input": {"template": "image/nope"}}), ErrorCode.TEMPLATE_NOT_FOUND),
        (json.dumps({"job_id": "bad-1", "input": {"template": "image/sdxl-basic"}}), ErrorCode.INVALID_INPUT),
    ],
)
def test_invalid_input_is_rejected_never_retried(body: str, code: ErrorCode) -> None:
    world = World()
    assert world.service.handle_message("bad-1", body) is Disposition.DONE
    record = world.record("bad-1")
    assert record.state is JobState.REJECTED
    assert record.error is not None and record.error.code is code
    assert record.error.retryable is False
    assert world.runpod.runs == []
    # A redelivery changes nothing.
    assert world.service.handle_message("bad-1", body) is Disposition.DONE
    assert world.record("bad-1").version == 0


def test_graph_checked_against_the_bundled_catalogue() -> None:
    world = World()
    bad = {**GRAPH, "1": {**GRAPH["1"], "inputs": {**GRAPH["1"]["inputs"], "width": 0}}}
    world.service.handle_message("m", message("job-bad", graph=bad))
    record = world.record("job-bad")
    assert record.state is JobState.REJECTED
    assert record.error is not None and record.error.code is ErrorCode.WORKFLOW_INVALID
    assert record.error.node_errors[0].node_id == "1"
    assert record.error.node_errors[0].input == "width"


def test_unknown_classes_and_model_lists_are_left_to_the_worker() -> None:
    world = World()
    custom = {**GRAPH, "3": {"class_type": "SomeCustomNode", "inputs": {"image": ["1", 0]}}}
    world.service.handle_message("m", message("job-custom", graph=custom))
    assert world.record("job-custom").state is JobState.SUBMITTED
    loader = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "my_model.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "x"}},
    }
    world.service.handle_message("m2", message("job-model", graph=loader))
    assert world.record("job-model").state is JobState.SUBMITTED


def test_template_jobs_bind_against_the_workflows_folder() -> None:
    world = World()
    text = json.dumps({"job_id": "tpl-1", "input": {"template": "image/sdxl-basic", "params": {"prompt": "a cat"}}})
    world.service.handle_message("m", text)
    assert world.record("tpl-1").state is JobState.SUBMITTED
    text = json.dumps(
        {"job_id": "tpl-2", "input": {"template": "image/sdxl-basic", "params": {"prompt": "x", "steps": 0}}}
    )
    world.service.handle_message("m", text)
    error = world.record("tpl-2").error
    assert error is not None and error.code is ErrorCode.INVALID_INPUT
    assert any("steps" in p.path for p in error.problems)


def test_transient_failure_retries_then_fails_at_the_last_delivery() -> None:
    world = World()
    world.runpod.fail_next(RunPodRateLimited("429"), count=10)
    assert world.service.handle_message("m", message("job-1"), receive_count=1) is Disposition.RETRY
    record = world.record("job-1")
    assert record.state is JobState.ACCEPTED
    assert record.error is not None and record.error.code is ErrorCode.SUBMIT_FAILED
    assert "delivery 1 of 3" in record.error.message
    assert world.service.handle_message("m", message("job-1"), receive_count=2) is Disposition.RETRY
    assert world.service.handle_message("m", message("job-1"), receive_count=3) is Disposition.RETRY
    record = world.record("job-1")
    assert record.state is JobState.FAILED
    assert record.error is not None and "dead-letter queue" in record.error.message
    # A redelivery from the DLQ does not resurrect it.
    world.runpod.failures.clear()
    assert world.service.handle_message("m", message("job-1"), receive_count=1) is Disposition.DONE
    assert world.runpod.runs == []


def test_transient_failure_then_success_on_redelivery() -> None:
    world = World()
    world.runpod.fail_next(RunPodUnavailable("503", status=503))
    assert world.service.handle_message("m", message("job-1")) is Disposition.RETRY
    assert world.service.handle_message("m", message("job-1"), receive_count=2) is Disposition.DONE
    record = world.record("job-1")
    assert record.state is JobState.SUBMITTED
    assert record.error is None
    assert len(world.runpod.runs) == 1


def test_an_in_flight_submission_is_not_duplicated_but_an_abandoned_one_is_claimed() -> None:
    world = World()
    # Simulate a delivery that created the record and died before /run.
    world.runpod.fail_next(KeyboardInterrupt())  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        world.service.handle_message("m", message("job-1"))
    assert world.record("job-1").state is JobState.ACCEPTED
    assert world.service.handle_message("m", message("job-1"), receive_count=2) is Disposition.DONE
    assert world.runpod.runs == []  # someone may still be submitting it
    world.clock.advance(world.limits.claim_timeout_ms)
    assert world.service.handle_message("m", message("job-1"), receive_count=3) is Disposition.DONE
    assert world.record("job-1").state is JobState.SUBMITTED
    assert len(world.runpod.runs) == 1


def test_success_webhook_records_outputs_and_notifies_once() -> None:
    notify = {"webhook_url": "https://caller.example/hook", "webhook_secret": "s" * 16}
    world = World()
    world.service.handle_message("m", message("job-1", notify=notify))
    record = world.webhook("rp-0", RunPodStatus.COMPLETED, "job-1", output=success_output("job-1"))
    assert record is not None and record.state is JobState.SUCCEEDED
    assert record.result is not None and record.result["job_id"] == "job-1"
    assert len(world.notifier.sent) == 1
    assert world.notifier.sent[0][1].webhook_url == "https://caller.example/hook"
    # Replays change nothing and notify nobody.
    world.service.handle_runpod_webhook({"id": "rp-0", "status": "FAILED"})
    assert world.record("job-1").state is JobState.SUCCEEDED
    assert len(world.notifier.sent) == 1
    assert [s for j, s in world.store.writes if j == "job-1"] == [
        JobState.ACCEPTED,
        JobState.SUBMITTED,
        JobState.SUCCEEDED,
    ]


def test_streaming_worker_output_records_the_final_result_chunk() -> None:
    # A worker in streaming mode: RunPod's output is every chunk, progress and outputs first, the result last.
    world = World()
    world.service.handle_message("m", message("job-1"))
    chunks = [{"type": "progress", "percent": 50.0}, success_output("job-1")]
    record = world.webhook("rp-0", RunPodStatus.COMPLETED, "job-1", output=chunks)
    assert record is not None and record.state is JobState.SUCCEEDED
    assert record.result is not None and record.result["job_id"] == "job-1"


def test_inline_outputs_stay_out_of_the_record() -> None:
    # A worker with no bucket returns outputs as base64: the record lists them, without their bytes.
    world = World()
    world.service.handle_message("m", message("job-1"))
    output = success_output("job-1")
    output["outputs"] = [{"node_id": "9", "kind": "image", "bytes": 300_000, "base64": "A" * 400_000}]
    record = world.webhook("rp-0", RunPodStatus.COMPLETED, "job-1", output=output)
    assert record is not None and record.state is JobState.SUCCEEDED
    assert [(o.node_id, o.bytes, o.base64) for o in record.outputs] == [("9", 300_000, None)]
    assert record.result is None  # 400 KB of base64 does not fit the item either


def test_output_that_is_no_job_result_is_kept_raw() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    record = world.webhook("rp-0", RunPodStatus.COMPLETED, "job-1", output=[{"chunk": 1}])
    assert record is not None and record.state is JobState.SUCCEEDED
    assert record.outputs == [] and record.result == {"output": [{"chunk": 1}]}


def test_webhook_body_is_only_a_hint() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    # The body claims success, but /status says the job is still running.
    world.runpod.set_status("rp-0", RunPodStatus.IN_PROGRESS)
    world.service.handle_runpod_webhook({"id": "rp-0", "status": "COMPLETED", "output": {"fake": True}})
    assert world.record("job-1").state is JobState.RUNNING


def test_non_retryable_failure_is_terminal_with_the_workers_error() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    error = JobError(code=ErrorCode.EXECUTION_FAILED, message="OOM").to_runpod()
    record = world.webhook(
        "rp-0", RunPodStatus.FAILED, "job-1", output={"details": error["details"]}, error=error["error"]
    )
    assert record is not None and record.state is JobState.FAILED
    assert record.error is not None and record.error.code is ErrorCode.EXECUTION_FAILED


def test_streaming_worker_failure_records_the_details_chunk() -> None:
    # A streaming worker yields the details in a chunk of their own, then {"error": ...}, which the SDK keeps
    # only as the error string: RunPod's output is the aggregated list of the chunks before it.
    world = World()
    world.service.handle_message("m", message("job-1"))
    error = JobError(
        code=ErrorCode.WORKFLOW_INVALID,
        message="node 3 cfg too big",
        node_errors=[
            NodeError(node_id="3", class_type="KSampler", input="cfg", type="value_bigger_than_max", message="x")
        ],
    ).to_runpod()
    chunks = [{"type": "progress", "percent": 10.0}, {"type": "error", "details": error["details"]}]
    record = world.webhook("rp-0", RunPodStatus.FAILED, "job-1", output=chunks, error=error["error"])
    assert record is not None and record.state is JobState.FAILED
    assert record.error is not None and record.error.code is ErrorCode.WORKFLOW_INVALID
    assert [e.input for e in record.error.node_errors] == ["cfg"]
    assert record.error.job_id == "job-1"


def test_streaming_worker_failure_without_details_reads_the_error_string() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    chunks = [{"type": "progress", "percent": 10.0}]
    record = world.webhook("rp-0", RunPodStatus.FAILED, "job-1", output=chunks, error="execution_failed: OOM")
    assert record is not None and record.error is not None
    assert record.error.code is ErrorCode.EXECUTION_FAILED and record.error.message == "OOM"


def test_retryable_failure_is_retried_by_the_reconciler_with_backoff() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    crashed = JobError(code=ErrorCode.COMFYUI_CRASHED, message="died").to_runpod()
    record = world.webhook(
        "rp-0", RunPodStatus.FAILED, "job-1", output={"details": crashed["details"]}, error=crashed["error"]
    )
    assert record is not None and record.state is JobState.SUBMITTED and record.error is not None
    world.clock.advance(world.limits.stale_after_ms)
    # Backoff after attempt 1 is 10 s, already covered by the 60 s staleness: /retry keeps the RunPod id.
    report = world.service.reconcile()
    assert report.resubmitted == 1
    record = world.record("job-1")
    assert record.attempt == 2 and record.runpod_id == "rp-0" and record.error is None
    assert world.runpod.jobs["rp-0"].status is RunPodStatus.IN_QUEUE


def test_lost_job_is_resubmitted_then_given_up_after_the_last_attempt() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    for attempt in (1, 2):
        world.runpod.forget(world.record("job-1").runpod_id or "")
        world.clock.advance(world.limits.stale_after_ms)
        assert world.service.reconcile().resubmitted == 1
        record = world.record("job-1")
        assert record.attempt == attempt + 1
        assert record.state is JobState.SUBMITTED
    world.runpod.forget(world.record("job-1").runpod_id or "")
    world.clock.advance(world.limits.stale_after_ms)
    assert world.service.reconcile().gave_up == 1
    record = world.record("job-1")
    assert record.state is JobState.FAILED
    assert record.error is not None and record.error.code is ErrorCode.LOST
    assert "gave up after 3 attempt(s)" in record.error.message
    assert len(world.runpod.runs) == 3


def test_resubmission_waits_for_its_backoff() -> None:
    world = World(limits=World().limits.__class__(**{**World().limits.__dict__, "stale_after_ms": 1_000}))
    world.service.handle_message("m", message("job-1"))
    world.runpod.forget("rp-0")
    world.clock.advance(2_000)
    assert world.service.reconcile().actions == {"job-1": "waiting"}
    world.clock.advance(10_000)
    assert world.service.reconcile().actions == {"job-1": "resubmitted"}


def test_reconcile_repairs_a_missed_webhook() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    world.runpod.set_status("rp-0", RunPodStatus.COMPLETED, output=success_output("job-1"))
    assert world.service.reconcile().examined == 0  # not stale yet
    world.clock.advance(world.limits.stale_after_ms)
    assert world.service.reconcile().repaired == 1
    assert world.record("job-1").state is JobState.SUCCEEDED


def _crash_after_run(world: World, job_id: str) -> None:
    """The queue handler dies (a Lambda timeout, say) after RunPod's ``/run`` but before SUBMITTED is written."""
    original = world.store.update

    def crash_on_submitted(record, expected):  # type: ignore[no-untyped-def]
        if record.state is JobState.SUBMITTED:
            raise KeyboardInterrupt
        return original(record, expected)

    world.store.update = crash_on_submitted  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            world.service.handle_message("m", message(job_id))
    finally:
        world.store.update = original  # type: ignore[method-assign]


def test_crash_after_run_is_adopted_by_the_webhook() -> None:
    world = World()
    _crash_after_run(world, "job-1")
    assert world.record("job-1").state is JobState.ACCEPTED and world.record("job-1").runpod_id is None
    record = world.webhook("rp-0", RunPodStatus.COMPLETED, "job-1", output=success_output("job-1"))
    assert record is not None and record.state is JobState.SUCCEEDED and record.runpod_id == "rp-0"
    assert len(world.runpod.runs) == 1


def test_crash_after_run_is_resubmitted_by_the_reconciler() -> None:
    world = World()
    _crash_after_run(world, "job-1")
    world.clock.advance(world.limits.submit_after_ms)
    assert world.service.reconcile().submitted == 1
    record = world.record("job-1")
    assert record.state is JobState.SUBMITTED and record.runpod_id == "rp-1"
    # The orphan's success still counts (same job id), and the later submission cannot regress it.
    world.webhook("rp-0", RunPodStatus.COMPLETED, "job-1", output=success_output("job-1"))
    assert world.record("job-1").state is JobState.SUCCEEDED
    world.webhook("rp-1", RunPodStatus.FAILED, "job-1", error="execution_failed: late")
    assert world.record("job-1").state is JobState.SUCCEEDED


def _progress(job_id: str, seq: int, percent: float) -> ProgressWebhookPayload:
    event = ProgressEvent(job_id=job_id, percent=percent, elapsed_ms=10)
    return ProgressWebhookPayload(job_id=job_id, seq=seq, sent_at_ms=1, event=event)


def test_progress_is_recorded_in_order_and_throttled() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    world.service.handle_progress(_progress("job-1", 1, 10))
    record = world.record("job-1")
    assert record.state is JobState.RUNNING and record.progress is not None and record.progress.percent == 10
    world.service.handle_progress(_progress("job-1", 2, 20))  # too soon
    assert world.record("job-1").progress.percent == 10  # type: ignore[union-attr]
    world.clock.advance(1_000)
    world.service.handle_progress(_progress("job-1", 1, 5))  # older than recorded
    assert world.record("job-1").progress.seq == 1  # type: ignore[union-attr]
    world.service.handle_progress(_progress("job-1", 3, 30))
    assert world.record("job-1").progress.percent == 30  # type: ignore[union-attr]
    world.webhook("rp-0", RunPodStatus.COMPLETED, "job-1", output=success_output("job-1"))
    world.clock.advance(5_000)
    world.service.handle_progress(_progress("job-1", 9, 90))
    assert world.record("job-1").state is JobState.SUCCEEDED


def test_notify_settings_are_not_in_the_public_record() -> None:
    world = World(notifier=MemoryNotifier())
    notify = {"webhook_url": "https://caller.example/hook", "webhook_secret": "topsecret-topsecret"}
    world.service.handle_message("m", message("job-1", notify=notify))
    assert "topsecret" not in world.record("job-1").model_dump_json()


def test_record_ttl_is_respected_by_reads() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    world.clock.advance(world.limits.record_ttl_s * 1000)
    assert world.store.get("job-1") is None
    # An expired id may be used again.
    world.service.handle_message("m", message("job-1"))
    assert world.record("job-1").state is JobState.SUBMITTED


def _ui(width: int, extra_type: str | None = None) -> dict[str, object]:
    nodes: list[dict[str, object]] = [
        {
            "id": 1,
            "type": "EmptyImage",
            "widgets_values": [width, 64, 1, 255],
            "inputs": [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
            "mode": 0,
        },
        {
            "id": 2,
            "type": "SaveImage",
            "widgets_values": ["relay"],
            "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
            "outputs": [],
            "mode": 0,
        },
    ]
    if extra_type is not None:
        nodes.append({"id": 3, "type": extra_type, "widgets_values": [], "inputs": [], "outputs": [], "mode": 0})
    return {"nodes": nodes, "links": [[1, 1, 0, 2, 0, "IMAGE"]]}


def test_ui_workflows_are_converted_and_validated() -> None:
    world = World()
    world.service.handle_message("m1", message("ui-ok", graph=_ui(64)))
    assert world.record("ui-ok").state is JobState.SUBMITTED
    # The worker gets the job as given: it converts with its live /object_info.
    assert "nodes" in world.runpod.jobs["rp-0"].body["input"]["workflow"]
    world.service.handle_message("m2", message("ui-bad", graph=_ui(0)))
    error = world.record("ui-bad").error
    assert error is not None and error.code is ErrorCode.WORKFLOW_INVALID
    world.service.handle_message("m3", message("ui-custom", graph=_ui(0, extra_type="SomeCustomPackNode")))
    assert world.record("ui-custom").state is JobState.SUBMITTED  # not checkable here: left to the worker


def test_store_throttling_returns_the_message_to_the_queue() -> None:
    from handlers.dispatch._errors import StoreUnavailable
    from handlers.dispatch._queue_handler import handle_queue

    world = World()

    def throttled(record: object, message: str) -> object:
        raise StoreUnavailable("DynamoDB PutItem: ProvisionedThroughputExceededException (transient)")

    world.store.create = throttled  # type: ignore[assignment,method-assign]
    event = {
        "Records": [{"messageId": "m-1", "body": message("job-1"), "attributes": {"ApproximateReceiveCount": "1"}}]
    }
    assert handle_queue(world.service, event) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert world.runpod.runs == []


def test_records_of_a_batch_are_submitted_concurrently() -> None:
    import threading

    from handlers.dispatch._queue_handler import handle_queue
    from handlers.dispatch._runpod import MemoryRunPod, Submitted

    barrier = threading.Barrier(10, timeout=10)

    class Gathering(MemoryRunPod):
        def run(self, endpoint_id: str, body: Any) -> Submitted:
            barrier.wait()  # breaks (and fails the record) unless all ten /run calls are in flight together
            return super().run(endpoint_id, body)

    world = World(runpod=Gathering(), validate=False)
    records = [
        {"messageId": f"m-{n}", "body": message(f"job-{n}"), "attributes": {"ApproximateReceiveCount": "1"}}
        for n in range(10)
    ]
    assert handle_queue(world.service, {"Records": records}, concurrency=10) == {"batchItemFailures": []}
    assert len(world.runpod.runs) == 10


def test_a_request_runpod_refuses_fails_the_job_without_retrying() -> None:
    from handlers.dispatch._errors import RunPodRequestError

    world = World()
    world.runpod.fail_next(RunPodRequestError("POST /run: RunPod answered 400 (body over 10 MB)", status=400))
    assert world.service.handle_message("m", message("job-1")) is Disposition.DONE
    record = world.record("job-1")
    assert record.state is JobState.FAILED
    assert record.error is not None and record.error.code is ErrorCode.SUBMIT_FAILED and not record.error.retryable
    assert "10 MB" in record.error.message


def test_a_rejected_api_key_is_explained_on_the_record_and_retried() -> None:
    from handlers.dispatch._errors import RunPodAuthError

    world = World()
    world.runpod.fail_next(RunPodAuthError("POST /run: RunPod answered 401: check RUNPOD_API_KEY"))
    assert world.service.handle_message("m", message("job-1")) is Disposition.RETRY
    record = world.record("job-1")
    assert record.state is JobState.ACCEPTED
    assert record.error is not None and "RUNPOD_API_KEY" in record.error.message


def test_a_reconciler_acting_on_a_stale_index_copy_does_not_resubmit_again() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    world.runpod.forget("rp-0")
    world.clock.advance(world.limits.stale_after_ms)
    stale_copy = world.record("job-1")
    assert world.service.reconcile_job(stale_copy) == "resubmitted"  # the first reconciler
    assert world.service.reconcile_job(stale_copy) in ("unchanged", "repaired")  # the overlapping one
    assert len(world.runpod.runs) == 2
    assert world.runpod.live("job-1") == [world.record("job-1").runpod_id]


def test_the_record_keeps_the_qa_verdict_of_a_result_and_of_a_qa_failed_error() -> None:
    world = World()
    world.service.handle_message("m", message("job-1"))
    output = success_output("job-1")
    output["qa"] = {"verdict": "warn", "policy": "report", "attempts": [{"attempt": 1, "verdict": "warn"}]}
    checks = [
        {"name": "black", "verdict": "pass", "score": 80.0},
        {"name": "clipping", "verdict": "warn", "score": 0.4},
    ]
    output["outputs"] = [
        {"node_id": "9", "kind": "image", "qa": {"verdict": "warn", "checks": checks, "phash": "0" * 16}}
    ]
    record = world.webhook("rp-0", RunPodStatus.COMPLETED, "job-1", output=output)
    assert record is not None and record.qa is not None and record.qa.verdict is QaVerdict.WARN
    kept = record.outputs[0].qa
    assert kept is not None and kept.verdict is QaVerdict.WARN
    assert [c.name for c in kept.checks] == ["clipping"] and kept.phash is None  # the record keeps what matters

    world.service.handle_message("m", message("job-2"))
    qa = JobQa(
        verdict=QaVerdict.FAIL,
        policy=QaPolicy.FAIL,
        attempts=[QaAttempt(attempt=1, verdict=QaVerdict.FAIL, failures=[QaFailure(node_id="9", checks=["black"])])],
    )
    error = JobError(code=ErrorCode.QA_FAILED, message="outputs failed the quality checks", qa=qa).to_runpod()
    record = world.webhook(
        "rp-1", RunPodStatus.FAILED, "job-2", output={"details": error["details"]}, error=error["error"]
    )
    assert record is not None and record.state is JobState.FAILED
    assert record.error is not None and record.error.code is ErrorCode.QA_FAILED and not record.error.retryable
    assert record.qa == qa
