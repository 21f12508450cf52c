"""Hostile job inputs are refused as problems, never as crashes: nested cross-field checks, unbounded lists,
deep nesting and numbers JSON cannot carry (issue 11, items 1, 4, 7, 8)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from handlers.contract import (
    MAX_JSON_DEPTH,
    MAX_MEDIA_ITEMS,
    JobInput,
    QueueMessage,
    input_digest,
    json_shape_problem,
    validation_problems,
)


def _problems(model: type[JobInput] | type[QueueMessage], data: Any, root: str = "input") -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [str(p) for p in validation_problems(info.value, root=root)]


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_nested_and_outer_cross_checks_are_reported_together() -> None:
    """A media item's own check fails inside a queue message whose job ids differ: both problems, no KeyError."""
    data = {"job_id": "a", "input": {"job_id": "b", "template": "image/x", "media": [{"name": "face"}]}}
    problems = _problems(QueueMessage, data, root="")
    assert "input.media[0]: give exactly one of url, base64 or s3 (got none)" in problems
    assert "job_id: differs from input.job_id ('b')" in problems


def test_a_media_item_with_only_a_name_and_a_duplicate_name() -> None:
    data = {"template": "image/x", "media": [{"name": "face"}, {"name": "face", "url": "https://x.example/a.png"}]}
    problems = _problems(JobInput, data)
    assert "input.media[0]: give exactly one of url, base64 or s3 (got none)" in problems
    assert "input.media: names must be unique: face" in problems


def test_a_custom_message_with_braces_survives_re_raising() -> None:
    data = {"job_id": "a", "input": {"job_id": "b{x}", "template": "image/x", "media": [{"name": "m"}]}}
    problems = _problems(QueueMessage, data, root="")
    assert any("differs from input.job_id ('b{x}')" in p for p in problems)


@pytest.mark.parametrize("field", ["media", "images"])
def test_lists_are_bounded_before_any_per_item_work(field: str) -> None:
    item = {"name": "m", "base64": "AAAA"} if field == "media" else {"name": "m", "image": "AAAA"}
    data = {"template": "image/x", field: [item] * 100_000}
    started = time.process_time()
    problems = _problems(JobInput, data)
    assert problems == [f"input.{field}: has 100000 entries; at most {MAX_MEDIA_ITEMS} are accepted"]
    # Linear in the input and never per item: far under the seconds the quadratic check took.
    assert time.process_time() - started < 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("params", {f"p{i}": i for i in range(300)}),
        ("overrides", {f"{i}.seed": i for i in range(2000)}),
        ("workflow", {str(i): {"class_type": "X", "inputs": {}} for i in range(6000)}),
        ("workflow", {"nodes": [{}] * 6000, "links": []}),
    ],
)
def test_maps_and_graphs_are_bounded(field: str, value: Any) -> None:
    data: dict[str, Any] = {"template": "image/x"} if field != "workflow" else {}
    data[field] = value
    problems = _problems(JobInput, data)
    assert len(problems) == 1 and problems[0].startswith(f"input.{field}: has ") and "at most" in problems[0]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 5000])
def test_deep_values_are_invalid_input_not_recursion_errors(depth: int) -> None:
    deep = _nested(depth)
    assert _problems(JobInput, {"template": "image/x", "params": {"a": deep}}) == [
        f"input.params: is nested more than {MAX_JSON_DEPTH} levels deep"
    ]
    graph = {"1": {"class_type": "X", "inputs": {"a": deep}}}
    assert _problems(JobInput, {"workflow": graph}) == [
        f"input.workflow: is nested more than {MAX_JSON_DEPTH} levels deep"
    ]
    assert _problems(JobInput, {"template": "image/x", "overrides": {"1.a": deep}}) == [
        f"input.overrides: is nested more than {MAX_JSON_DEPTH} levels deep"
    ]


def test_values_at_the_depth_bound_are_accepted() -> None:
    job = JobInput.model_validate({"template": "image/x", "params": {"a": _nested(MAX_JSON_DEPTH - 2)}})
    assert input_digest(job).startswith("sha256:")


@pytest.mark.parametrize("text", ["1e999", "-1e999"])
def test_numbers_json_cannot_carry_are_refused(text: str) -> None:
    body = '{"input": {"template": "image/x", "params": {"a": NUMBER}}}'.replace("NUMBER", text)
    with pytest.raises(ValidationError) as info:
        QueueMessage.model_validate_json(body)
    assert [str(p) for p in validation_problems(info.value, root="")] == [
        "input.params: holds a number JSON cannot carry (NaN or infinity)"
    ]


def test_json_shape_problem_is_iterative() -> None:
    assert json_shape_problem(_nested(100_000)) == f"is nested more than {MAX_JSON_DEPTH} levels deep"
    assert json_shape_problem({"a": [1, 2.5, "x", None, {"b": True}]}) is None
    assert json_shape_problem([float("nan")]) is not None
