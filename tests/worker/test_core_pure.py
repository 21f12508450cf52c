"""The core's pure decisions, without servers: throttling, ETA, timings, error mapping, payload limits, config,
and log redaction."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from handlers.common import ConfigError, job_context, redact, register_secret
from handlers.contract import ErrorCode, JobError, JobInput, JobResult, OutputItem, OutputKind, Problem, ProgressEvent
from handlers.worker import (
    Finished,
    ProgressThrottle,
    WorkerConfig,
    configure_logging,
    error_for,
    fit_payload,
    progress_event,
)
from handlers.worker._events import NodeTimeline, result_timings
from handlers.worker._media import BadBase64, DisallowedUrl, MediaFetchFailed
from handlers.worker._storage import UploadFailed
from handlers.worker.comfy import (
    ComfyUICrashed,
    ComfyUIUnavailable,
    DeadlineExceeded,
    ExecutionErrorDetails,
    ExecutionFailed,
    PromptInterrupted,
    PromptRejected,
)
from handlers.worker.comfy._protocol import ProgressUpdate
from handlers.workflow import BindingError, TemplateNotFoundError


def _progress(percent: float, step: int | None = None) -> ProgressEvent:
    return ProgressEvent(job_id="j", percent=percent, elapsed_ms=0, step=step)


def _update(percent: float, step: float | None = None, steps: float | None = None) -> ProgressUpdate:
    return ProgressUpdate(
        percent=percent,
        node="3",
        class_type="KSampler",
        title="Sampler",
        step=step,
        steps=steps,
        done_nodes=1,
        total_nodes=4,
    )


# ---------------------------------------------------------------------------------------------------- progress


def test_throttle_lets_the_first_event_and_100_percent_through_and_spaces_the_rest() -> None:
    throttle = ProgressThrottle(interval_ms=500)
    assert throttle.admit(_progress(1), now_ms=0)
    assert not throttle.admit(_progress(2), now_ms=100)
    assert not throttle.admit(_progress(3), now_ms=499)
    assert throttle.admit(_progress(4), now_ms=500)
    assert throttle.admit(_progress(100), now_ms=501)  # the end is never held back


def test_throttle_holds_the_latest_early_event_until_the_interval_ends() -> None:
    throttle = ProgressThrottle(interval_ms=500)
    assert throttle.admit(_progress(10), now_ms=1000)
    assert throttle.due_ms() is None
    assert not throttle.admit(_progress(20), now_ms=1100)
    assert not throttle.admit(_progress(30), now_ms=1200)  # replaces the held 20
    assert throttle.due_ms() == 1500
    assert throttle.take_due(1499) is None
    held = throttle.take_due(1500)
    assert held is not None and held.percent == 30
    assert throttle.take_due(2000) is None and throttle.due_ms() is None
    assert not throttle.admit(_progress(40), now_ms=1600)  # the interval counts from the held event's release


def test_throttle_drops_an_event_that_says_nothing_new() -> None:
    throttle = ProgressThrottle(interval_ms=0)
    assert throttle.admit(_progress(10), now_ms=0)
    assert not throttle.admit(_progress(10), now_ms=1000)
    assert throttle.admit(_progress(11), now_ms=1001)
    # A new node (or step) at the same percent is news.
    assert throttle.admit(ProgressEvent(job_id="j", percent=11, elapsed_ms=0, node_id="3"), now_ms=1002)
    assert throttle.admit(ProgressEvent(job_id="j", percent=11, elapsed_ms=0, node_id="3", step=1), now_ms=1003)


def test_progress_event_carries_node_step_and_a_straight_line_eta() -> None:
    event = progress_event(_update(25.0, 3, 12), job_id="j", prompt_id="p", elapsed_ms=1500, running_ms=1000)
    assert (event.node_id, event.node_title, event.class_type) == ("3", "Sampler", "KSampler")
    assert (event.step, event.step_max) == (3, 12)
    assert event.eta_ms == 3000  # 1 s for 25 %: 3 s for the remaining 75 %
    assert event.elapsed_ms == 1500


def test_progress_event_has_no_eta_before_execution_or_at_the_end() -> None:
    assert progress_event(_update(10), job_id="j", prompt_id=None, elapsed_ms=5, running_ms=None).eta_ms is None
    assert progress_event(_update(100), job_id="j", prompt_id=None, elapsed_ms=5, running_ms=50).eta_ms is None


# ----------------------------------------------------------------------------------------------------- timings


def test_node_timeline_charges_each_node_until_the_next_starts() -> None:
    timeline = NodeTimeline()
    timeline.node_started("4", 100)
    timeline.node_started("3", 130)
    timeline.node_started("8", 1130)
    timeline.finished(1140)
    assert timeline.nodes_ms == {"4": 30, "3": 1000, "8": 10}


def test_result_timings_are_spans_in_ms() -> None:
    timings = result_timings(
        started=0,
        stage=(10, 60),
        queued=70,
        running=90,
        ended=1090,
        upload_ms=33.4,
        nodes_ms={"3": 1000},
        now=1200,
    )
    assert timings.stage_ms == 50
    assert timings.queue_wait_ms == 20
    assert timings.execution_ms == 1000
    assert timings.upload_ms == 33
    assert timings.total_ms == 1200
    assert timings.nodes_ms == {"3": 1000}


# ------------------------------------------------------------------------------------------------------ errors


def _validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as info:
        JobInput.model_validate({"workflow": {"1": {"class_type": "X"}}, "timeout_s": 0})
    return info.value


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (_validation_error(), ErrorCode.INVALID_INPUT, False),
        (BindingError([Problem(path="input.params.x", message="is not a parameter")]), ErrorCode.INVALID_INPUT, False),
        (TemplateNotFoundError("no template"), ErrorCode.TEMPLATE_NOT_FOUND, False),
        (BadBase64("not base64"), ErrorCode.INVALID_INPUT, False),
        (DisallowedUrl("blocked"), ErrorCode.INVALID_INPUT, False),
        (MediaFetchFailed("503", retryable=True), ErrorCode.MEDIA_FETCH_FAILED, True),
        (UploadFailed("S3 said SlowDown"), ErrorCode.UPLOAD_FAILED, True),
        (PromptRejected("no", status=400, body={"error": {"message": "bad"}}), ErrorCode.WORKFLOW_INVALID, False),
        (DeadlineExceeded("late", prompt_id="p"), ErrorCode.TIMED_OUT, False),
        (TimeoutError(), ErrorCode.TIMED_OUT, False),
        (PromptInterrupted("stop", prompt_id="p"), ErrorCode.CANCELLED, False),
        (ComfyUICrashed("gone", prompt_id="p"), ErrorCode.COMFYUI_CRASHED, True),
        (ComfyUIUnavailable("refused"), ErrorCode.COMFYUI_UNAVAILABLE, True),
    ],
)
def test_error_for_maps_every_known_failure(exc: BaseException, code: ErrorCode, retryable: bool) -> None:
    error = error_for(exc, job_id="job-1", prompt_id="p-1")
    assert error is not None
    assert (error.code, error.retryable, error.job_id) == (code, retryable, "job-1")


def test_error_for_execution_failure_names_the_node() -> None:
    details = ExecutionErrorDetails(
        node_id="3", node_type="KSampler", exception_type="RuntimeError", exception_message="CUDA out of memory\nmore"
    )
    error = error_for(ExecutionFailed("failed", prompt_id="p", details=details), job_id="j")
    assert error is not None and error.code is ErrorCode.EXECUTION_FAILED
    assert error.execution is not None and error.execution.node_id == "3"
    assert error.message == "node 3 (KSampler) raised RuntimeError: CUDA out of memory"


def test_error_for_points_a_media_failure_at_its_item() -> None:
    exc = BadBase64("not base64")
    exc.media_name = "face.png"
    error = error_for(exc, job_id="j", media_index={"other": 0, "face.png": 1})
    assert error is not None and [p.path for p in error.problems] == ["input.media[1]"]


def test_error_for_leaves_bugs_to_the_caller() -> None:
    assert error_for(KeyError("x"), job_id="j") is None


def test_finished_needs_exactly_one_outcome() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Finished()
    error = JobError(code=ErrorCode.CANCELLED, message="stop")
    assert Finished(error=error).payload() == error.to_runpod()
    assert Finished(result=JobResult(job_id="j")).payload()["job_id"] == "j"


# ---------------------------------------------------------------------------------------------------- payloads


def test_fit_payload_drops_inline_base64_before_anything_else() -> None:
    big = base64.b64encode(b"x" * 600_000).decode()
    result = JobResult(
        job_id="j",
        outputs=[
            OutputItem(node_id="1", kind=OutputKind.IMAGE, base64=big, url="https://example/1"),
            OutputItem(node_id="2", kind=OutputKind.IMAGE, base64="aGk=", url="https://example/2"),
        ],
    ).model_dump(mode="json", exclude_none=True)
    fitted, trimmed = fit_payload(result, 500_000)
    assert trimmed
    assert len(json.dumps(fitted)) <= 500_000
    assert "base64" not in fitted["outputs"][0] and fitted["outputs"][0]["url"] == "https://example/1"
    assert fitted["outputs"][1]["base64"] == "aGk="  # the small one stays
    assert result["outputs"][0]["base64"] == big  # the input is not modified


def test_fit_payload_leaves_a_small_payload_alone() -> None:
    payload = {"job_id": "j", "outputs": []}
    assert fit_payload(payload, 1000) == (payload, False)


# ------------------------------------------------------------------------------------------------------ config


def test_config_defaults_from_an_empty_environment() -> None:
    config = WorkerConfig.from_env({})
    assert config.comfyui_url == "http://127.0.0.1:8188"
    assert config.comfyui_command is None and not config.supervised
    assert config.s3_bucket is None and config.stream is False


def test_config_reads_every_variable(tmp_path: Path) -> None:
    warmup = tmp_path / "warmup.json"
    warmup.write_text("{}")
    config = WorkerConfig.from_env(
        {
            "COMFYUI_URL": "http://10.0.0.5:8188/",
            "COMFYUI_COMMAND": "python main.py --listen 127.0.0.1 --port '8188'",
            "COMFYUI_OUTPUT_DIR": str(tmp_path / "output"),
            "COMFYUI_INPUT_DIR": str(tmp_path / "input"),
            "RELAY_S3_BUCKET": "relay-outputs",
            "RELAY_S3_PREFIX": "/prod/jobs/",
            "RELAY_STREAM": "true",
            "RELAY_PROGRESS_INTERVAL_MS": "250",
            "RELAY_ALLOW_PRIVATE_URLS": "1",
            "RELAY_WARMUP_WORKFLOW": str(warmup),
            "RELAY_WORKFLOWS_DIR": str(tmp_path),
        }
    )
    assert config.comfyui_url == "http://10.0.0.5:8188"
    assert config.comfyui_command == ("python", "main.py", "--listen", "127.0.0.1", "--port", "8188")
    assert config.comfyui_temp_dir == tmp_path / "temp"
    assert (config.s3_bucket, config.s3_prefix) == ("relay-outputs", "prod/jobs")
    assert config.stream and config.allow_private_urls and config.progress_interval_ms == 250
    assert config.warmup_workflow == warmup and config.workflows_dir == tmp_path


def test_config_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env(
            {
                "COMFYUI_URL": "ftp://x",
                "RELAY_S3_BUCKET": "Not_A_Bucket",
                "RELAY_STREAM": "maybe",
                "RELAY_PROGRESS_INTERVAL_MS": "-1",
                "COMFYUI_OUTPUT_DIR": "relative/path",
                "RELAY_WARMUP_WORKFLOW": "/nonexistent/warmup.json",
            }
        )
    names = sorted(p.split("=", 1)[0] for p in info.value.problems)
    assert names == [
        "COMFYUI_OUTPUT_DIR",
        "COMFYUI_URL",
        "RELAY_PROGRESS_INTERVAL_MS",
        "RELAY_S3_BUCKET",
        "RELAY_STREAM",
        "RELAY_WARMUP_WORKFLOW",
    ]


# ----------------------------------------------------------------------------------------------------- logging


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_logs_are_json_lines_keyed_by_job_and_prompt(log_stream: io.StringIO) -> None:
    with job_context("job-7", "prompt-7"):
        logging.getLogger("handlers.worker.core").info("job %s started", "job-7", extra={"outputs": 3})
    entry = json.loads(log_stream.getvalue().strip().splitlines()[-1])
    assert entry["job_id"] == "job-7" and entry["prompt_id"] == "prompt-7"
    assert entry["message"] == "job job-7 started" and entry["outputs"] == 3 and entry["level"] == "INFO"


def test_a_secret_and_a_base64_blob_never_reach_the_log(log_stream: io.StringIO) -> None:
    secret = "whsec-0123456789abcdef-very-secret"
    register_secret(secret)
    blob = base64.b64encode(bytes(range(256)) * 4).decode()
    log = logging.getLogger("handlers.worker.test")
    log.info("webhook secret is %s", secret)
    log.warning("job input: %s", {"image": blob, "api_key": "k-123456", "url": "https://x/?X-Amz-Signature=abc123"})
    log.info("data uri data:image/png;base64,%s", blob[:60])
    try:
        raise ValueError(f"bad payload {blob}")
    except ValueError:
        log.exception("failed")
    text = log_stream.getvalue()
    assert secret not in text
    assert blob[:100] not in text and blob[:60] not in text
    assert "k-123456" not in text and "abc123" not in text
    assert text.count("<redacted>") >= 3 and "<base64 blob>" in text
    assert all(json.loads(line) for line in text.strip().splitlines())


def test_redact_keeps_ordinary_text() -> None:
    assert redact("node 3 (KSampler) took 120 ms") == "node 3 (KSampler) took 120 ms"
