"""Poison queue messages get a REJECTED record and are deleted, never retried into the dead-letter queue with
nothing recorded (issue 11, items 1, 4 and 7)."""

from __future__ import annotations

import json

import pytest

from handlers.contract import MAX_JOB_INPUT_BYTES, ErrorCode, JobState
from handlers.dispatch._jobs import Disposition
from tests.dispatch.helpers import GRAPH, World

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
