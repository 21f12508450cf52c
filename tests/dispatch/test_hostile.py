"""Poison queue messages get a REJECTED record and are deleted, never retried into the dead-letter queue with
nothing recorded (issue 11, items 1, 4 and 7)."""

from __future__ import annotations

import json

import pytest

from handlers.contract import MAX_JOB_INPUT_BYTES, ErrorCode, JobState, RunPodStatus
from handlers.dispatch._errors import RunPodUnavailable
from handlers.dispatch._jobs import Disposition
from tests.dispatch.helpers import GRAPH, World, message, success_output

POISON = {
    "nested cross-field": json.dumps(
        {"job_id": "victim-1", "input": {"job_id": "other", "workflow": GRAPH, "media": [{"name": "only-a-name"}]}}
    ),
    "deep JSON": '{"job_id": "victim-1", "input": {"workflow": DEEP}}'.replace("DEEP", "[" * 1000 + "]" * 1000),
    "deep value": json.dumps(
        {"job_id": "victim-1", "input": {"template": "image/x", "params": {"a": [[[[0]]]]}}}
    ).replace("[[[[0]]]]", "[" * 150 + "0" + "]" * 150),
    "infinite number": '{"job_id": "victim-1", "input": {"workflow": G, "params": {"a": 1e999}}}'.replace(
        "G", json.dumps(GRAPH)
    ),
    "thousands of media": json.dumps(
        {"job_id": "victim-1", "input": {"workflow": GRAPH, "media": [{"name": "m", "base64": "AA=="}] * 32_000}}
    ),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_poison_message_is_rejected_with_a_record(name: str) -> None:
    world = World()
    assert world.service.handle_message("m-1", POISON[name]) is Disposition.DONE
    # A body too deep to read its job id from is recorded under the id derived from the SQS message id.
    record = world.store.get("victim-1") or world.record("m-1")
    assert record.state is JobState.REJECTED
    assert record.error is not None and record.error.code is ErrorCode.INVALID_INPUT
    assert record.error.problems, record.error
    assert not world.runpod.runs


def test_nested_and_outer_problems_are_all_listed() -> None:
    world = World()
    world.service.handle_message("m-1", POISON["nested cross-field"])
    error = world.record("victim-1").error
    assert error is not None
    paths = {p.path for p in error.problems}
    assert {"input.media[0]", "job_id"} <= paths


def test_an_oversized_body_is_rejected_before_it_is_parsed() -> None:
    world = World()
    body = '{"job_id": "x", "input": {"workflow": {}}, "pad": "' + "a" * MAX_JOB_INPUT_BYTES + '"}'
    assert world.service.handle_message("m-big", body) is Disposition.DONE
    record = world.record("m-big")
    assert record.state is JobState.REJECTED
    assert record.error is not None and "at most" in record.error.message


# -- RunPod webhooks naming other jobs (item 2) --------------------------------------------------------------


def _direct_job(world: World, job_id: str | None, output: dict[str, object]) -> str:
    """A job someone sent straight to the endpoint (not through dispatch), already COMPLETED."""
    submitted = world.runpod.run("ep-1", {"input": {"job_id": job_id} if job_id else {}})
    world.runpod.set_status(submitted.id, RunPodStatus.COMPLETED, output=output)
    return submitted.id


@pytest.mark.parametrize("state", ["submitted", "accepted"])
def test_a_webhook_naming_another_completed_job_cannot_complete_the_victim(state: str) -> None:
    world = World()
    if state == "accepted":
        world.runpod.fail_next(RunPodUnavailable("down"))
    world.service.handle_message("m-1", message("victim"))
    before = world.record("victim")
    other = _direct_job(world, "attacker", success_output("attacker"))
    body = {"id": other, "status": "COMPLETED", "input": {"job_id": "victim"}, "output": success_output("victim")}
    world.service.handle_runpod_webhook(body)
    after = world.record("victim")
    assert after.state is before.state and after.state is not JobState.SUCCEEDED
    assert after.runpod_id == before.runpod_id and other not in after.runpod_ids


def test_a_result_naming_another_job_is_refused_even_from_the_jobs_own_submission() -> None:
    world = World()
    world.service.handle_message("m-1", message("victim"))
    runpod_id = world.record("victim").runpod_id
    assert runpod_id is not None
    world.webhook(runpod_id, RunPodStatus.COMPLETED, "victim", output=success_output("someone-else"))
    assert world.record("victim").state is JobState.SUBMITTED


def test_every_submission_is_remembered_and_an_earlier_ones_success_still_counts() -> None:
    world = World()
    world.service.handle_message("m-1", message("job-1"))
    first = world.runpod.jobs["rp-0"]
    world.runpod.forget("rp-0")  # RunPod lost it: the reconciler submits the job again
    world.clock.advance(world.limits.stale_after_ms + 60_000)
    world.service.reconcile()
    world.runpod.jobs["rp-0"] = first  # ... and then the first submission turns out to have finished after all
    record = world.record("job-1")
    assert record.runpod_ids == ["rp-0", record.runpod_id] and record.runpod_id != "rp-0"
    world.runpod.set_status("rp-0", RunPodStatus.COMPLETED, output=success_output("job-1"))
    world.service.handle_runpod_webhook({"id": "rp-0", "status": "COMPLETED", "input": {"job_id": "job-1"}})
    assert world.record("job-1").state is JobState.SUCCEEDED


# -- notify targets (item 3) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notify", "path"),
    [
        ({"webhook_url": "http://169.254.169.254/latest/meta-data/", "webhook_secret": "s" * 16}, "webhook_url"),
        ({"webhook_url": "http://127.0.0.1:8080/hook", "webhook_secret": "s" * 16}, "webhook_url"),
        ({"webhook_url": "http://10.0.0.5/hook", "webhook_secret": "s" * 16}, "webhook_url"),
        ({"webhook_url": "http://[::ffff:7f00:1]/hook", "webhook_secret": "s" * 16}, "webhook_url"),
        ({"sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/internal-admin"}, "sqs_queue_url"),
    ],
)
def test_refused_notify_targets_reject_the_job(notify: dict[str, str], path: str) -> None:
    world = World()
    assert world.service.handle_message("m-1", message("job-n", notify=notify)) is Disposition.DONE
    record = world.record("job-n")
    assert record.state is JobState.REJECTED and record.error is not None
    assert [p.path for p in record.error.problems] == [f"notify.{path}"]
    assert not world.runpod.runs


def test_an_allowed_queue_is_accepted() -> None:
    from handlers.dispatch._notify import NotifyPolicy

    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/results"
    world = World()
    world.service.notify_policy = NotifyPolicy(queues=frozenset({queue}))
    world.service.handle_message("m-1", message("job-q", notify={"sqs_queue_url": queue}))
    assert world.record("job-q").state is JobState.SUBMITTED
