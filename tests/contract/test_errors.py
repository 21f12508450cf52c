"""JobError: codes, retryable defaults, RunPod's shape both ways, and ComfyUI's failure bodies mapped onto it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from handlers.contract import (
    RETRYABLE_CODES,
    ErrorCode,
    JobError,
    JobInput,
    Problem,
    comfyui_execution_error,
    comfyui_rejection_error,
    validation_problems,
)


def test_required_codes_exist_with_stable_values() -> None:
    for code in [
        "invalid_input",
        "workflow_invalid",
        "media_fetch_failed",
        "comfyui_unavailable",
        "comfyui_crashed",
        "execution_failed",
        "timed_out",
        "cancelled",
        "upload_failed",
        "internal",
    ]:
        assert ErrorCode(code).value == code


@pytest.mark.parametrize("code", list(ErrorCode))
def test_retryable_defaults_follow_the_code(code: ErrorCode) -> None:
    error = JobError.model_validate({"code": code.value, "message": "m"})
    assert error.retryable is (code in RETRYABLE_CODES)


def test_transient_codes_are_retryable_and_job_faults_are_not() -> None:
    assert ErrorCode.COMFYUI_UNAVAILABLE in RETRYABLE_CODES
    assert ErrorCode.UPLOAD_FAILED in RETRYABLE_CODES
    assert ErrorCode.INVALID_INPUT not in RETRYABLE_CODES
    assert ErrorCode.WORKFLOW_INVALID not in RETRYABLE_CODES


def test_explicit_retryable_wins() -> None:
    assert JobError(code=ErrorCode.EXECUTION_FAILED, message="oom", retryable=True).retryable is True
    assert JobError(code=ErrorCode.COMFYUI_CRASHED, message="x", retryable=False).retryable is False


def test_to_runpod_shape() -> None:
    error = JobError(
        code=ErrorCode.INVALID_INPUT,
        message="1 problem",
        job_id="j1",
        problems=[Problem(path="input.params.width", message="must be <= 4096")],
    )
    body = error.to_runpod()
    assert body["error"] == "invalid_input: 1 problem"
    assert body["details"] == {
        "code": "invalid_input",
        "message": "1 problem",
        "retryable": False,
        "job_id": "j1",
        "problems": [{"path": "input.params.width", "message": "must be <= 4096"}],
    }
    json.dumps(body)  # JSON-ready


def test_from_runpod_reads_back_structured_details() -> None:
    original = JobError(code=ErrorCode.UPLOAD_FAILED, message="s3 down", job_id="j")
    body = original.to_runpod()
    # RunPod pops "error" and keeps the rest as "output".
    output = {k: v for k, v in body.items() if k != "error"}
    assert JobError.from_runpod(body["error"], output) == original


def test_explicit_retryable_survives_the_round_trip() -> None:
    original = JobError(code=ErrorCode.COMFYUI_CRASHED, message="segfault in a custom node", retryable=False)
    body = original.to_runpod()
    assert body["details"] == {"code": "comfyui_crashed", "message": "segfault in a custom node", "retryable": False}
    assert JobError.from_runpod(body["error"], {"details": body["details"]}).retryable is False


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ("timed_out: deadline", ErrorCode.TIMED_OUT, "deadline"),
        ("no such code: x", ErrorCode.INTERNAL, "no such code: x"),
        ('{"error_type": "<class \'ValueError\'>", "error_message": "boom"}', ErrorCode.INTERNAL, None),
        (None, ErrorCode.INTERNAL, "the job failed without an error message"),
    ],
)
def test_from_runpod_bare_strings(error: str | None, code: ErrorCode, message: str | None) -> None:
    parsed = JobError.from_runpod(error, {"details": "not an object"})
    assert parsed.code is code
    assert parsed.message == (message if message is not None else error)


def test_unknown_code_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        JobError.model_validate({"code": "nope", "message": "m"})


def test_validation_problems_build_an_invalid_input_error() -> None:
    with pytest.raises(ValidationError) as info:
        JobInput.model_validate({"workflow": {"1": {"class_type": "X", "inputs": {}}}, "timeout_s": -1})
    error = JobError(code=ErrorCode.INVALID_INPUT, message="bad", problems=validation_problems(info.value))
    assert error.to_runpod()["details"]["problems"] == [{"path": "input.timeout_s", "message": "must be >= 1"}]


# -- ComfyUI bodies (recorded from a real ComfyUI 0.3.64) --------------------------------------------------------------


def _transcript(transcripts_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((transcripts_dir / f"{name}.json").read_text())
    return data


def test_rejection_above_max(transcripts_dir: Path) -> None:
    body = _transcript(transcripts_dir, "13_validation_above_max")["post_prompt"]["json"]
    error = comfyui_rejection_error(body, job_id="j")
    assert error.code is ErrorCode.WORKFLOW_INVALID and error.retryable is False
    [node_error] = error.node_errors
    assert node_error.node_id == "1"
    assert node_error.class_type == "EmptyImage"
    assert node_error.input == "width"
    assert node_error.type == "value_bigger_than_max"
    assert "16384" in node_error.message
    assert "node 1.width" in error.message


def test_rejection_combo_lists_allowed_values(transcripts_dir: Path) -> None:
    body = _transcript(transcripts_dir, "14_validation_combo_not_in_list")["post_prompt"]["json"]
    [node_error] = comfyui_rejection_error(body).node_errors
    assert node_error.type == "value_not_in_list"
    assert node_error.input == "upscale_method"
    assert node_error.allowed == ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]


def test_rejection_without_node_errors(transcripts_dir: Path) -> None:
    body = _transcript(transcripts_dir, "11_validation_missing_class")["post_prompt"]["json"]
    error = comfyui_rejection_error(body)
    assert error.node_errors == []
    assert "NoSuchNode" in error.message and "#3" in error.message


def test_every_recorded_rejection_maps(transcripts_dir: Path) -> None:
    for path in sorted((transcripts_dir).glob("1*_validation_*.json")):
        post = json.loads(path.read_text())["post_prompt"]
        if post["status"] != 400:
            continue
        error = comfyui_rejection_error(post["json"])
        assert error.code is ErrorCode.WORKFLOW_INVALID, path.name
        expected = sum(len(entry["errors"]) for entry in post["json"].get("node_errors", {}).values())
        assert len(error.node_errors) == expected, path.name


def test_rejection_v3_combo_and_garbage() -> None:
    body = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
        "node_errors": {
            "5": {
                "class_type": "X",
                "errors": [
                    {
                        "type": "value_not_in_list",
                        "message": "Value not in list",
                        "details": "mode: 'z'",
                        "extra_info": {"input_name": "mode", "input_config": ["COMBO", {"options": ["a", "b"]}]},
                    },
                    "garbage",
                ],
            },
            "6": "garbage",
        },
    }
    [node_error] = comfyui_rejection_error(body).node_errors
    assert node_error.allowed == ["a", "b"]
    assert node_error.message == "Value not in list: mode: 'z'"
    assert comfyui_rejection_error("not a dict").message == "ComfyUI rejected the workflow"


def test_execution_error_from_recording(transcripts_dir: Path) -> None:
    frames = _transcript(transcripts_dir, "30_exec_error_alloc")["ws"]
    [data] = [
        f["msg"]["data"] for f in frames if isinstance(f.get("msg"), dict) and f["msg"].get("type") == "execution_error"
    ]
    error = comfyui_execution_error(data, job_id="j")
    assert error.code is ErrorCode.EXECUTION_FAILED and error.retryable is False
    assert error.execution is not None
    assert error.execution.node_id == "1"
    assert error.execution.node_type == "EmptyImage"
    assert error.execution.exception_type == "RuntimeError"
    assert error.execution.traceback
    assert error.prompt_id == data["prompt_id"]
    assert error.message.startswith("node 1 (EmptyImage) raised RuntimeError: ")
    assert "\n" not in error.message


def test_one_constructor_names_the_first_three_problems() -> None:
    problems = [Problem(path=f"input.params.p{i}", message="is required") for i in range(5)]
    error = JobError.from_problems(problems, job_id="j-1")
    assert error.message == (
        "input.params.p0: is required; input.params.p1: is required; input.params.p2: is required (and 2 more)"
    )
    assert (error.code, error.job_id, error.problems) == (ErrorCode.INVALID_INPUT, "j-1", problems)
    assert JobError.from_problems(problems[:1], code=ErrorCode.WORKFLOW_INVALID).message == str(problems[0])
