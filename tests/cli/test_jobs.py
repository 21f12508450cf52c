"""``comfy-relay enqueue`` and ``jobs watch`` against the local stack: SQS -> on_queue -> RunPod -> webhook."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.cli.conftest import CliRunner


def test_enqueued_job_is_followed_to_success(run_cli: CliRunner, local_stack: Path) -> None:
    job_id = f"cli-{uuid.uuid4().hex[:8]}"
    sent = run_cli(
        "enqueue", "image/sdxl-basic", "-p", "prompt=a kite", "-p", "steps=3", "-p", "width=64", "-p", "height=64",
        "--job-id", job_id, "--local", "--state-dir", str(local_stack), "--json",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["job_id"] == job_id

    watched = run_cli("jobs", "watch", job_id, "--local", "--state-dir", str(local_stack), "--json", "--timeout", "60")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    records = [json.loads(line) for line in watched.stdout.splitlines()]
    assert records[-1]["job_id"] == job_id
    assert records[-1]["state"] == "SUCCEEDED"
    assert records[-1]["runpod_id"]

    table = run_cli("jobs", "watch", "--once", "--local", "--state-dir", str(local_stack))
    assert table.returncode == 0
    assert job_id in table.stdout


def test_enqueue_checks_the_job_before_sending(run_cli: CliRunner, local_stack: Path) -> None:
    result = run_cli(
        "enqueue", "image/sdxl-basic", "-p", "steps=abc", "--local", "--state-dir", str(local_stack),
    )  # fmt: skip
    assert result.returncode == 2
    assert "message rejected: invalid_input" in result.stderr
    assert "input.params.steps: must be an integer (got 'abc')" in result.stderr
    assert "Traceback" not in result.stderr
