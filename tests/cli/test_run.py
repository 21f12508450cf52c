"""``comfy-relay run|status|cancel`` as subprocesses, against the local stack's RunPod endpoint."""

from __future__ import annotations

import json
from pathlib import Path

from handlers.cli._runpod_client import EndpointTarget
from tests.cli.conftest import CliRunner


def test_a_bad_parameter_prints_the_structured_error_and_exits_non_zero(run_cli: CliRunner) -> None:
    result = run_cli("run", "image/sdxl-basic", "-p", "prompt=a fox", "-p", "width=wide", "-p", "steps=500", "--wait")
    assert result.returncode == 2
    assert "job rejected: invalid_input:" in result.stderr
    assert "input.params.width: must be an integer (got 'wide')" in result.stderr
    assert "input.params.steps: must be <= 100 (got 500)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_parameter_as_json(run_cli: CliRunner) -> None:
    result = run_cli("run", "image/sdxl-basic", "--json")
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["status"] == "REJECTED"
    assert document["error"]["code"] == "invalid_input"
    assert {"path": "input.params.prompt", "message": "is required"} in document["error"]["problems"]


def test_an_unknown_template_is_rejected(run_cli: CliRunner) -> None:
    result = run_cli("run", "image/no-such-template")
    assert result.returncode == 2
    assert "template_not_found" in result.stderr


def test_no_endpoint_says_what_to_do(run_cli: CliRunner, tmp_path: Path) -> None:
    result = run_cli("run", "image/sdxl-basic", "-p", "prompt=x", "--state-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "comfy-relay local up" in result.stderr
    assert "--endpoint" in result.stderr


def test_run_waits_downloads_and_reports(run_cli: CliRunner, local_stack: Path, tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    result = run_cli(
        "run", "image/sdxl-basic", "-p", "prompt=a kite", "-p", "steps=4", "-p", "width=128", "-p", "height=128",
        "--local", "--state-dir", str(local_stack), "--out", str(out), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "COMPLETED"
    saved = [Path(p) for p in status["saved"]]
    assert len(saved) == 1
    assert saved[0].parent == out
    assert saved[0].read_bytes().startswith(b"\x89PNG")

    again = run_cli("status", status["id"], "--local", "--state-dir", str(local_stack), "--json")
    assert again.returncode == 0
    view = json.loads(again.stdout)
    assert (view["state"], view["runpod"]["status"]) == ("SUCCEEDED", "COMPLETED")


def test_a_failing_job_prints_the_failing_node(run_cli: CliRunner, local_stack: Path) -> None:
    result = run_cli(
        "run", "image/sdxl-basic", "-p", "prompt=x", "-p", "steps=2", "--override", "KSampler.sampler_name=bogus",
        "--wait", "--local", "--state-dir", str(local_stack),
    )  # fmt: skip
    assert result.returncode == 1
    assert "job failed: workflow_invalid:" in result.stderr
    assert "sampler_name" in result.stderr
    assert "Traceback" not in result.stderr


def test_submit_without_wait_then_cancel(run_cli: CliRunner, local_stack: Path, tmp_path: Path) -> None:
    workflow = tmp_path / "graph.json"
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "{{prefix}}"}},
    }
    workflow.write_text(json.dumps(graph))
    submitted = run_cli("run", str(workflow), "-p", "prefix=cli", "--local", "--state-dir", str(local_stack), "--json")
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    cancelled = run_cli("cancel", job_id, "--local", "--state-dir", str(local_stack), "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    # Cancelled while queued or already finished: either way the endpoint knows the job and says where it is.
    assert json.loads(cancelled.stdout)["state"] in ("CANCELLED", "SUCCEEDED")


def test_an_endpoint_target_keeps_its_key_out_of_its_repr() -> None:
    # A repr is what logs and tracebacks show; the bearer key must never be part of it.
    target = EndpointTarget(api_base="http://127.0.0.1:1/v2", endpoint_id="e", api_key="rp-secret-key", local=True)
    assert "rp-secret-key" not in repr(target)
    assert target.api_key == "rp-secret-key"
