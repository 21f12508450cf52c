"""The worker's log under the real runpod SDK at its default log level (DEBUG): no URL signature or secret in any
line, whoever wrote it, and none of the SDK's job-loop noise (issue 11, item 6)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from handlers.common import JsonFormatter, RedactingFilter
from handlers.contract import JobResult
from handlers.worker._logging import route_sdk_logs, sdk_log_level
from tests.local.runpod.conftest import Emulator
from tests.worker._relay import (
    Comfy,
    RelayWorker,
    make_models,
    mixed_graph,
    serve_comfy,
    spawn_relay_worker,
    worker_env,
)
from tests.worker.conftest import make_s3_client

BUCKET = "sdk-logs"
SECRET = "hook-secret-0123456789abcdef"
_SIGNATURE = re.compile(r"(?i)(X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=(?!<redacted>)")


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    with serve_comfy(root / "data", make_models(root / "models")) as served:
        yield served


@pytest.fixture(scope="module")
def worker(
    runpod: Emulator, comfy: Comfy, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayWorker]:
    make_s3_client(moto_endpoint).create_bucket(Bucket=BUCKET)
    workdir = tmp_path_factory.mktemp("sdk-logs")
    env = worker_env(runpod, workdir, comfy.url, moto_endpoint, BUCKET, RELAY_ALLOW_PRIVATE_URLS="1")
    env.pop("RUNPOD_LOG_LEVEL")  # the SDK's own default: DEBUG, job outputs included
    with spawn_relay_worker(runpod, workdir, env) as process:
        yield process


def test_no_signature_or_secret_and_no_sdk_noise(runpod: Emulator, worker: RelayWorker) -> None:
    hook = {"url": "http://127.0.0.1:9/progress", "secret": SECRET}
    job_id = runpod.run({"input": {"workflow": mixed_graph(), "progress_webhook": hook}})
    status = runpod.wait_status(job_id, "COMPLETED", "FAILED")
    assert status["status"] == "COMPLETED", worker.output()
    urls = [o.url for o in JobResult.model_validate(status["output"]).outputs if o.url]
    assert urls and all("X-Amz-Signature=" in u for u in urls)  # the result itself carries them
    lines = [line for line in worker.output().splitlines() if line.strip()]
    assert not [line for line in lines if _SIGNATURE.search(line) or SECRET in line]
    entries: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith("--- Starting Serverless Worker"):
            continue  # the SDK's one start banner
        entry = json.loads(line)
        assert {"ts", "level", "logger", "message"} <= set(entry), line  # every line went through our formatter
        entries.append(entry)
    assert not [e for e in entries if e["logger"].startswith("runpod") and e["level"] in ("DEBUG", "INFO")]


def test_sdk_lines_are_routed_through_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    class FakeSdkLogger:
        def log(self, message: object, message_level: str = "INFO", job_id: str | None = None) -> None:
            print(message)  # what RunPodLogger does

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    target = logging.getLogger("runpod")
    target.addHandler(handler)
    try:
        sdk = FakeSdkLogger()
        route_sdk_logs(sdk, logging.WARNING)
        sdk.log("Handler output: https://b.s3/x.png?X-Amz-Signature=abcdef123", "DEBUG", "rp-1")
        sdk.log("worker lost: https://b.s3/x.png?X-Amz-Signature=abcdef123", "WARN", "rp-1")
        sdk.log("Upgrade to RunPod Pro", "TIP")
    finally:
        target.removeHandler(handler)
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.err.splitlines()]
    assert out.out == "" and len(lines) == 1
    assert lines[0]["level"] == "WARNING" and "abcdef123" not in lines[0]["message"]
    assert lines[0]["runpod_job_id"] == "rp-1"


def test_sdk_log_level_follows_runpod_log_level_when_set() -> None:
    assert sdk_log_level({}) == logging.WARNING
    assert sdk_log_level({"RUNPOD_LOG_LEVEL": "debug"}) == logging.DEBUG
    assert sdk_log_level({"RUNPOD_LOG_LEVEL": "ERROR"}) == logging.ERROR
