"""Building a job's input from command-line arguments: typing, media, and every problem reported at once."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from handlers.cli._follow import job_error_from_status, print_job_error, result_outputs
from handlers.cli._job_input import JobInputError, build_job_input, parse_assignments, untyped_value
from handlers.contract import ErrorCode, JobError


def test_template_params_are_typed_by_the_schema() -> None:
    document = build_job_input(
        "image/sdxl-basic", params={"prompt": "42", "steps": "12", "cfg": "6.5", "sampler": "euler"}
    )
    assert document["template"] == "image/sdxl-basic"
    # "42" stays text for a string parameter; numbers become numbers.
    assert document["params"] == {"prompt": "42", "steps": 12, "cfg": 6.5, "sampler": "euler"}


def test_graph_edit_params_pass_the_local_check_as_the_worker_would_take_them() -> None:
    document = build_job_input("image/sdxl-basic", params={"prompt": "a fox", "seeds": "[1, 2]", "aspect_ratio": "3:2"})
    assert document["params"] == {"prompt": "a fox", "seeds": [1, 2], "aspect_ratio": "3:2"}


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(JobInputError) as caught:
        build_job_input("image/sdxl-basic", params={"width": "x", "nope": "1"})
    error = caught.value.error
    assert error.code is ErrorCode.INVALID_INPUT
    paths = sorted(p.path for p in error.problems)
    assert paths == ["input.params.nope", "input.params.prompt", "input.params.width"]


def test_media_files_are_inlined_and_urls_passed(tmp_path: Path) -> None:
    (tmp_path / "face.png").write_bytes(b"\x89PNG-ish")
    document = build_job_input(
        "image/blur",
        params={"image": "face"},
        media={"face": "face.png", "other": "https://example.com/a.png"},
        cwd=tmp_path,
    )
    face, other = document["media"]
    assert face == {"name": "face", "base64": base64.b64encode(b"\x89PNG-ish").decode(), "mime": "image/png"}
    assert other == {"name": "other", "url": "https://example.com/a.png"}


def test_an_unreadable_media_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(JobInputError, match=r"input\.media\.face: cannot read"):
        build_job_input("image/blur", params={"image": "face"}, media={"face": "missing.png"}, cwd=tmp_path)


def test_workflow_files_and_untyped_placeholders(tmp_path: Path) -> None:
    graph = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": "{{n}}"}}}
    (tmp_path / "w.json").write_text(json.dumps({"prompt": graph}))
    document = build_job_input("w.json", params={"n": "7"}, overrides={"1.value": "8"}, cwd=tmp_path)
    assert document["workflow"] == graph
    assert document["params"] == {"n": 7}
    assert document["overrides"] == {"1.value": 8}
    with pytest.raises(JobInputError, match="not JSON"):
        (tmp_path / "bad.json").write_text("{")
        build_job_input("bad.json", cwd=tmp_path)


def test_assignments_and_untyped_values() -> None:
    assert parse_assignments(["a=1", "b=x=y"], "--param", "input.params") == {"a": "1", "b": "x=y"}
    with pytest.raises(JobInputError) as caught:
        parse_assignments(["a", "b=1", "b=2"], "--param", "input.params")
    assert [p.path for p in caught.value.error.problems] == ["input.params", "input.params.b"]
    assert untyped_value("12") == 12
    assert untyped_value("true") is True
    assert untyped_value("[1, 2]") == [1, 2]
    assert untyped_value("hello") == "hello"
    assert untyped_value('"quoted"') == '"quoted"'


def test_results_and_errors_from_status_answers() -> None:
    result = {"job_id": "j", "outputs": [{"node_id": "9", "kind": "image", "temp": False}]}
    assert result_outputs({"status": "COMPLETED", "output": result}) == result["outputs"]
    streamed = [{"type": "progress", "percent": 50}, result]
    assert result_outputs({"status": "COMPLETED", "output": streamed}) == result["outputs"]
    details = {"code": "execution_failed", "message": "boom", "execution": {"node_id": "3", "node_type": "KSampler"}}
    # Read through the contract's RunPodJobStatus: the details as the worker's JobError renders them.
    expected = JobError.model_validate(details).to_runpod()["details"]
    assert expected["retryable"] is False and expected["execution"]["node_type"] == "KSampler"
    assert job_error_from_status({"status": "FAILED", "output": {"details": details}}) == expected
    assert job_error_from_status({"status": "FAILED", "error": "workflow_invalid: node 3 bad"}) == {
        "code": "workflow_invalid",
        "message": "node 3 bad",
        "retryable": False,
    }
    assert job_error_from_status({"status": "TIMED_OUT"})["code"] == "timed_out"
    # A streaming worker: the details come in their own chunk of the aggregated output.
    chunks = [{"type": "progress", "percent": 5.0}, {"type": "error", "details": details}]
    assert job_error_from_status({"status": "FAILED", "output": chunks, "error": "x: y"}) == expected


def test_printed_errors_name_the_failing_node_and_input() -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    print_job_error(
        console,
        {
            "code": "workflow_invalid",
            "message": "1 node input failed",
            "node_errors": [{"node_id": "3", "class_type": "KSampler", "input": "steps", "type": "t", "message": "m"}],
            "execution": {"node_id": "8", "node_type": "VAEDecode", "exception_type": "OOM", "exception_message": "x"},
            "problems": [{"path": "input.params.width", "message": "must be <= 4096"}],
        },
    )
    text = console.export_text()
    # The message only summarises the lines below it: said once.
    assert "error: workflow_invalid:\n" in text
    assert "1 node input failed" not in text
    assert "node 3 (KSampler) input steps: t: m" in text
    assert "node 8 (VAEDecode) raised OOM: x" in text
    assert "input.params.width: must be <= 4096" in text


def test_a_dataset_folder_is_zipped_inline_and_urls_passed(tmp_path: Path) -> None:
    import io
    import zipfile

    photos = tmp_path / "photos"
    (photos / "10_ava").mkdir(parents=True)
    (photos / "a.png").write_bytes(b"png")
    (photos / "a.txt").write_text("close-up")
    (photos / "10_ava" / "b.jpg").write_bytes(b"jpg")
    (photos / "notes.md").write_text("not part of it")
    job = build_job_input("train/lora-sdxl", character="ava", dataset="photos", cwd=tmp_path)
    assert "dataset" not in job["params"] and "trigger_word" not in job["params"]  # the worker fills both
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(job["dataset"]["zip_base64"]))) as zf:
        assert sorted(zf.namelist()) == ["10_ava/b.jpg", "a.png", "a.txt"]
    by_url = build_job_input("train/lora-sdxl", params={"trigger_word": "zx"}, dataset="s3://bkt/sets/ava/")
    assert by_url["dataset"] == {"s3": "s3://bkt/sets/ava/"}
    with pytest.raises(JobInputError) as caught:
        build_job_input("train/lora-sdxl", params={"trigger_word": "zx"}, dataset="missing", cwd=tmp_path)
    assert caught.value.error.problems[0].path == "input.dataset"


def test_a_finished_jobs_warnings_and_registration_are_printed() -> None:
    from rich.console import Console

    from handlers.cli._follow import print_record

    console = Console(record=True, width=200)
    output = {
        "job_id": "t1",
        "warnings": ["dataset has 4 images; 10 or more usually train better"],
        "registered": {
            "character": "ava",
            "file": "ava/l_10_steps_00001_.safetensors",
            "s3_uri": "s3://bkt/k/l.safetensors",
            "sha256": "ab" * 32,
            "bytes": 10,
        },
    }
    print_record(console, {"id": "rp-1", "status": "COMPLETED", "output": output}, [])
    text = console.export_text()
    assert "warning: dataset has 4 images" in text
    assert "registered for ava: ava/l_10_steps_00001_.safetensors (sha256 abababababab...)" in text


def test_labels_output_names_and_prompt_batches_from_the_command_line() -> None:
    import argparse

    from handlers.cli._job_input import job_input_from_args
    from handlers.cli._run import job_input_arguments

    parser = argparse.ArgumentParser()
    job_input_arguments(parser)
    argv = ["image/sdxl-basic", "-p", 'prompts=["a fox", "a cat"]', "--label", "project=p1"]
    argv += ["--name", "projects/{project}/{variation}", "--strip-metadata"]
    document = job_input_from_args(parser.parse_args(argv))
    assert document["params"] == {"prompts": ["a fox", "a cat"]}
    assert document["labels"] == {"project": "p1"}
    assert document["output"] == {"name": "projects/{project}/{variation}", "strip_metadata": True}
    with pytest.raises(JobInputError) as caught:
        job_input_from_args(parser.parse_args(["image/sdxl-basic", "-p", "prompt=x", "--name", "../x"]))
    assert [p.path for p in caught.value.error.problems] == ["input.output.name"]


def test_printed_outputs_name_the_variation_that_made_them() -> None:
    import io

    from rich.console import Console

    from handlers.cli._follow import print_outputs

    buffer = io.StringIO()
    item = {"node_id": "2:9", "filename": "1-2-a-fox.png", "kind": "image", "variation": {"index": 1, "seed": 2}}
    item["variation"]["prompt"] = "a fox"
    print_outputs(Console(file=buffer, width=200), [item])
    assert "variation 1: seed 2, prompt 'a fox'" in buffer.getvalue()
