"""``comfy-relay emulate runpod`` and the worker environment it prints."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

import httpx
import pytest

from handlers.cli import build_parser
from handlers.local.runpod import EmulatorConfig, export_lines, worker_environment
from tests.conftest import REPO


def test_worker_environment_matches_the_sdk_url_formats() -> None:
    env = worker_environment("http://127.0.0.1:9000/", EmulatorConfig(endpoint_id="ep1", worker_key="wk"), gpu="A 1")
    assert env == {
        "RUNPOD_WEBHOOK_GET_JOB": "http://127.0.0.1:9000/v2/ep1/job-take/$ID?gpu=A%201",
        "RUNPOD_WEBHOOK_POST_OUTPUT": "http://127.0.0.1:9000/v2/ep1/job-done/$RUNPOD_POD_ID/$ID?gpu=A%201",
        "RUNPOD_WEBHOOK_POST_STREAM": "http://127.0.0.1:9000/v2/ep1/job-stream/$RUNPOD_POD_ID/$ID?gpu=A%201",
        "RUNPOD_WEBHOOK_PING": "http://127.0.0.1:9000/v2/ep1/ping/$RUNPOD_POD_ID?gpu=A%201",
        "RUNPOD_POD_ID": "local-worker-1",
        "RUNPOD_AI_API_KEY": "wk",
        "RUNPOD_ENDPOINT_ID": "ep1",
        "RUNPOD_PING_INTERVAL": "10000",
    }
    with pytest.raises(ValueError, match="ping_interval_ms"):
        worker_environment("http://x", ping_interval_ms=500)
    # Quoted so a shell keeps $ID for the SDK to substitute.
    [line] = export_lines({"A": "http://h/$ID?x=1"})
    assert shlex.split(line) == ["export", "A=http://h/$ID?x=1"]


def test_parser_accepts_the_knobs() -> None:
    args = build_parser().parse_args(
        ["emulate", "runpod", "--port", "0", "--endpoint-id", "e", "--api-key", "k", "--retention", "5"]
    )
    assert (args.port, args.endpoint_id, args.api_key, args.retention) == (0, "e", "k", 5.0)


def test_cli_serves_and_prints_the_environment() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "handlers.cli", "emulate", "runpod", "--port", "0", "--api-key", "k1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        exports: dict[str, str] = {}
        while "RUNPOD_API_KEY" not in exports:
            line = process.stdout.readline()
            assert line, f"CLI exited early: {process.wait(10)} {process.stderr.read() if process.stderr else ''}"
            if line.startswith("export "):
                name, _, value = shlex.split(line)[1].partition("=")
                exports[name] = value
        assert set(exports) >= {
            "RUNPOD_WEBHOOK_GET_JOB",
            "RUNPOD_WEBHOOK_POST_OUTPUT",
            "RUNPOD_WEBHOOK_POST_STREAM",
            "RUNPOD_WEBHOOK_PING",
            "RUNPOD_POD_ID",
            "RUNPOD_AI_API_KEY",
            "RUNPOD_ENDPOINT_ID",
            "RUNPOD_PING_INTERVAL",
            "RUNPOD_API_BASE",
        }
        assert exports["RUNPOD_WEBHOOK_GET_JOB"].endswith("/v2/local-endpoint/job-take/$ID?gpu=LOCAL")
        health = httpx.get(f"{exports['RUNPOD_API_BASE']}/local-endpoint/health", headers={"Authorization": "k1"})
        assert health.json()["jobs"]["inQueue"] == 0
    finally:
        os.kill(process.pid, signal.SIGINT)
        code = process.wait(20)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    assert code == 0


def test_cli_refuses_a_busy_loop_ping_interval() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "handlers.cli", "emulate", "runpod", "--port", "0", "--ping-interval", "10"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--ping-interval" in result.stderr
