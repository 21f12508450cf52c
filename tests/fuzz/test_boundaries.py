"""Every boundary model fuzzed: a hostile input is refused as a typed error, never an unhandled exception.

- the job input (``JobInput``) and, through the worker's own pure pipeline, UI and API graphs through
  conversion, binding, graph edits, validation and staging: every exception must be one the worker maps to a
  ``JobError`` (``error_for``), else it would reach a caller as ``internal``;
- the queue message, through dispatch's ``handle_message``: never raises, every message ends with a record;
- RunPod webhook and ``/status`` bodies, and signed progress webhook bodies, through ``on_webhook``: never a 500.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from handlers.contract import (
    GraphFormat,
    JobInput,
    ProgressWebhookPayload,
    QueueMessage,
    RunPodStatus,
    input_digest,
    sign_webhook,
    validation_problems,
)
from handlers.dispatch._jobs import Disposition
from handlers.dispatch._webhook_handler import WebhookHandler
from handlers.worker._events import error_for
from handlers.workflow import load_template, prepare_run, resolve_graph, resolve_template, ui_to_api, validate
from tests.conftest import REPO
from tests.dispatch.conftest import http_event
from tests.dispatch.helpers import World, message
from tests.fuzz.conftest import count, fuzz_settings
from tests.fuzz.strategies import JSON, api_graphs, catalogue, job_inputs, queue_bodies, ui_graphs

LIBRARY = REPO / "workflows"
TOKEN = "t" * 20
SECRET = "p" * 20


@fuzz_settings()
@given(job_inputs())
def test_job_input(data: Any) -> None:
    count("JobInput")
    try:
        job = JobInput.model_validate(data)
    except ValidationError as exc:
        assert validation_problems(exc)
        return
    assert input_digest(job).startswith("sha256:")
    JobInput.model_validate_json(job.model_dump_json(exclude_none=True))


def _worker_pipeline(job: JobInput) -> None:
    """What the worker does with a valid job before anything is queued: resolve, bind, edit, validate, stage."""
    names = [m.name for m in job.media]
    if job.template is not None:
        template = load_template(LIBRARY, job.template, job.character)
        bound = resolve_template(template, job.params, job.overrides, media_names=names, catalogue=catalogue())
    else:
        assert job.workflow is not None
        graph: Any = job.workflow
        if job.workflow_format is GraphFormat.UI:
            graph = ui_to_api(job.workflow, catalogue())
        bound = resolve_graph(graph, job.params, job.overrides, media_names=names, catalogue=catalogue())
    report = validate(bound.graph, catalogue())
    if not report.valid:
        json.dumps(report.comfyui_body())
    prepare_run(bound, job_id="job-1", attempt="a", staged={name: f"job-1/{name}" for name in names})


@fuzz_settings()
@given(st.one_of(job_inputs(), api_graphs().map(lambda g: {"workflow": g}), ui_graphs().map(lambda g: {"workflow": g})))
def test_worker_pipeline(data: Any) -> None:
    count("worker pipeline (convert, bind, edit, validate, stage)")
    try:
        job = JobInput.model_validate(data)
        _worker_pipeline(job)
    except Exception as exc:
        error = error_for(exc, job_id="job-1")
        assert error is not None, f"unhandled: {type(exc).__name__}: {exc}"
        assert error.code.value in ("invalid_input", "workflow_invalid", "template_not_found"), error


@fuzz_settings()
@given(queue_bodies())
def test_queue_message(body: str) -> None:
    count("QueueMessage (on_queue)")
    world = World()
    disposition = world.service.handle_message("m-1", body)
    assert disposition is Disposition.DONE  # nothing here is transient: every message is decided
    assert world.store.writes, "a message left no record"  # accepted (then submitted) or REJECTED
    with contextlib.suppress(ValidationError):
        QueueMessage.model_validate_json(body)


def _webhooks(world: World) -> WebhookHandler:
    return WebhookHandler(
        world.service, webhook_token=TOKEN, progress_secrets=[SECRET], api_token="a" * 20, clock_s=time.time
    )


RUNPOD_BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"id": st.sampled_from(["rp-0", "rp-9"])},
        optional={
            "status": st.one_of(st.sampled_from([s.value for s in RunPodStatus]), JSON),
            "input": st.one_of(st.fixed_dictionaries({"job_id": st.sampled_from(["job-1", "other"])}), JSON),
            "output": JSON,
        },
    ),
)
PROGRESS_BODIES = st.one_of(
    JSON, st.fixed_dictionaries({"job_id": st.just("job-1"), "seq": JSON, "sent_at_ms": JSON, "event": JSON})
)


@fuzz_settings()
@given(
    body=RUNPOD_BODIES,
    status=st.sampled_from(list(RunPodStatus)),
    output=JSON,
    error=st.one_of(st.none(), st.text(max_size=60)),
)
def test_runpod_webhook_and_status_bodies(body: Any, status: RunPodStatus, output: Any, error: str | None) -> None:
    count("RunPod webhook + /status body (on_webhook)")
    world = World()
    world.service.handle_message("m-1", message("job-1"))
    world.runpod.set_status("rp-0", status, output=output, error=error)
    raw = json.dumps(body, allow_nan=True).encode()
    response = _webhooks(world)(http_event("POST", "/webhooks/runpod", f"token={TOKEN}", body=raw))
    assert response["statusCode"] in (200, 400), response


@fuzz_settings()
@given(PROGRESS_BODIES)
def test_progress_webhook_bodies(body: Any) -> None:
    count("progress webhook body (on_webhook)")
    world = World()
    world.service.handle_message("m-1", message("job-1"))
    raw = json.dumps(body, allow_nan=True).encode()
    headers = sign_webhook(SECRET, raw, int(time.time()))
    response = _webhooks(world)(http_event("POST", "/webhooks/progress", headers=headers, body=raw))
    assert response["statusCode"] in (200, 400), response
    with contextlib.suppress(ValidationError):
        ProgressWebhookPayload.model_validate_json(raw)
