"""The demo's jobs, through the two ways in: RunPod's ``/run`` API, and a message on the SQS queue (``on_queue``
submits it; RunPod's webhook ends it in the job record). One job has several output nodes, so per-node outputs
stream in while it runs. Every output is checked in S3 and saved locally."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from handlers.cli._aws import stack_client
from handlers.cli._console import JobBars, ProgressView
from handlers.cli._follow import (
    download_outputs,
    follow_job,
    job_error_from_status,
    print_job_error,
    print_record,
    result_outputs,
    state_word,
)
from handlers.cli._runpod_client import EndpointTarget, RunPodApiError, RunPodCli

if TYPE_CHECKING:
    from rich.console import Console

    from handlers.local.stack import StackInfo

__all__ = ["DemoJob", "DemoOutcome", "demo_jobs", "library_jobs", "multi_output_workflow", "run_demo_jobs"]

_TIMEOUT_S = 300.0
_POLL_S = 0.2
_TERMINAL_RECORD_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "REJECTED"})


@dataclass(frozen=True)
class DemoJob:
    key: str
    label: str
    via: Literal["runpod", "sqs"]
    input: dict[str, Any]


@dataclass
class DemoOutcome:
    label: str
    ok: bool
    files: list[Path] = field(default_factory=list)
    error: str | None = None
    record: dict[str, Any] = field(default_factory=dict)


def multi_output_workflow(seed: int) -> dict[str, Any]:
    """image/sdxl-basic with a second seed and an upscaled variant of the first image: three output nodes."""
    from handlers.workflow import bind_template, default_workflows_dir, load_template  # noqa: PLC0415

    template = load_template(default_workflows_dir(), "image/sdxl-basic")
    params: dict[str, Any] = {"prompt": "a red fox in fresh snow", "width": 512, "height": 512, "steps": 16}
    graph = copy.deepcopy(bind_template(template, {**params, "seed": seed}).graph)
    graph["9"]["inputs"]["filename_prefix"] = "fox/seed-a"
    graph["9"]["_meta"]["title"] = "Seed A"
    second = copy.deepcopy(graph["3"])
    second["inputs"]["seed"] = seed + 1
    second["_meta"] = {"title": "KSampler (seed B)"}
    graph["103"] = second
    graph["108"] = {
        "class_type": "VAEDecode",
        "inputs": {"samples": ["103", 0], "vae": ["4", 2]},
        "_meta": {"title": "VAE Decode (seed B)"},
    }
    graph["109"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["108", 0], "filename_prefix": "fox/seed-b"},
        "_meta": {"title": "Seed B"},
    }
    graph["110"] = {
        "class_type": "ImageScaleBy",
        "inputs": {"image": ["8", 0], "upscale_method": "lanczos", "scale_by": 2.0},
        "_meta": {"title": "Upscale 2x"},
    }
    graph["111"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["110", 0], "filename_prefix": "fox/seed-a-2x"},
        "_meta": {"title": "Seed A upscaled"},
    }
    return graph


def demo_jobs() -> list[DemoJob]:
    run_id = uuid.uuid4().hex[:8]
    return [
        DemoJob(
            key="run-template",
            label="image/sdxl-basic via RunPod /run",
            via="runpod",
            input={
                "template": "image/sdxl-basic",
                "params": {"prompt": "a lighthouse on a cliff at dawn", "width": 512, "height": 512, "steps": 20},
            },
        ),
        DemoJob(
            key="run-multi",
            label="two seeds + upscale via RunPod /run",
            via="runpod",
            input={"workflow": multi_output_workflow(seed=1234)},
        ),
        DemoJob(
            key="queue-template",
            label="image/sdxl-basic via SQS -> on_queue",
            via="sqs",
            input={
                "job_id": f"demo-{run_id}",
                "template": "image/sdxl-basic",
                "params": {"prompt": "a paper boat on a pond", "width": 512, "height": 512, "steps": 20, "seed": 7},
            },
        ),
    ]


def library_jobs() -> list[DemoJob]:
    """``demo --all``: every template of the library (and every character's own copy), each with its defaults and
    the sample inputs it requires, through RunPod's ``/run``: the jobs ``comfy-relay smoke`` runs."""
    from handlers.cli._smoke import select_templates, smoke_jobs  # noqa: PLC0415 - pillow

    jobs = []
    for job in smoke_jobs(select_templates(None, [])):
        if job.input is None:
            raise ValueError(job.problem)
        key = job.template.replace("/", "-")
        jobs.append(DemoJob(key=key, label=f"{job.template} via RunPod /run", via="runpod", input=job.input))
    return jobs


async def _aws_client(info: StackInfo, service: Literal["s3", "sqs"]) -> Any:
    # In a thread: building a client reads botocore's service model from disk while the other jobs' bars are live.
    return await asyncio.to_thread(stack_client, info.client_env, service)


async def _via_runpod(api: RunPodCli, job: DemoJob, bars: JobBars) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    submitted = await api.run(job.input)
    result = await follow_job(api, str(submitted["id"]), bars=bars, key=job.key, poll_interval_s=_POLL_S)
    outputs = result_outputs(result.status) if result.ok else []
    return result.status, outputs


async def _via_queue(
    api: RunPodCli, info: StackInfo, job: DemoJob, bars: JobBars
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send the message, then follow the job record (``GET /jobs/{id}`` on the function URL) to its end; while
    RunPod runs it, its ``/stream`` shows the live progress."""
    import httpx  # noqa: PLC0415

    env = info.client_env
    sqs = await _aws_client(info, "sqs")
    job_id = job.input["job_id"]
    body = json.dumps({"job_id": job_id, "input": job.input})
    await asyncio.to_thread(sqs.send_message, QueueUrl=env["RELAY_QUEUE_URL"], MessageBody=body)
    url = f"{env['RELAY_WEBHOOK_URL']}/jobs/{job_id}"
    headers = {"Authorization": f"Bearer {env['RELAY_API_TOKEN']}"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _TIMEOUT_S
    record: dict[str, Any] = {}
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as http:
        while loop.time() < deadline:
            response = await http.get(url, headers=headers)
            if response.status_code == 200:
                record = response.json()
                state = str(record.get("state"))
                if state in _TERMINAL_RECORD_STATES:
                    break
                await _show_stream(api, record, bars, job.key)
            else:
                bars.update(job.key, ProgressView(0.0, status="in queue"))
            await asyncio.sleep(_POLL_S)
    outputs = [dict(o) for o in record.get("outputs") or [] if isinstance(o, Mapping)]
    return record, outputs


async def _show_stream(api: RunPodCli, record: Mapping[str, Any], bars: JobBars, key: str) -> None:
    """The job's live progress: what a streaming worker streamed, else (result mode) the latest update in RunPod's
    ``/status``, else the record's own."""
    progress = record.get("progress")
    if isinstance(progress, Mapping):
        bars.update(key, ProgressView(float(progress.get("percent", 0.0)), progress.get("node_title")))
    runpod_id = record.get("runpod_id")
    if not isinstance(runpod_id, str):
        bars.update(key, ProgressView(0.0, status=state_word(str(record.get("state", "")))))
        return
    try:
        answer = await api.stream(runpod_id)
        events = [c.get("output") for c in answer.get("stream") or [] if isinstance(c, Mapping)]
        if not events:
            status = await api.status(runpod_id)
            events = [status.get("output")] if status.get("status") == "IN_PROGRESS" else []
    except RunPodApiError:
        return
    for event in events:
        if isinstance(event, Mapping) and event.get("type") == "progress":
            view = ProgressView(
                float(event.get("percent", 0.0)),
                event.get("node_title"),
                event.get("step"),
                event.get("step_max"),
                eta_ms=event.get("eta_ms"),
            )
            bars.update(key, view)


async def _check_in_s3(s3: Any, outputs: list[dict[str, Any]]) -> list[str]:
    """The outputs that are not in S3 (each must have an ``s3_uri`` whose object exists)."""
    missing = []
    for item in outputs:
        uri = item.get("s3_uri")
        if not isinstance(uri, str):
            missing.append(f"{item.get('filename') or item.get('node_id')}: no s3_uri")
            continue
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            await asyncio.to_thread(s3.head_object, Bucket=bucket, Key=key)
        except Exception as exc:  # botocore's ClientError (404) and connection errors alike
            missing.append(f"{uri}: {exc}")
    return missing


async def _one(
    api: RunPodCli, info: StackInfo, job: DemoJob, bars: JobBars, out_dir: Path
) -> tuple[DemoOutcome, list[dict[str, Any]]]:
    outcome = DemoOutcome(label=job.label, ok=False)
    try:
        if job.via == "runpod":
            record, outputs = await _via_runpod(api, job, bars)
            succeeded = record.get("status") == "COMPLETED"
        else:
            record, outputs = await _via_queue(api, info, job, bars)
            succeeded = record.get("state") == "SUCCEEDED"
    except RunPodApiError as exc:
        outcome.error = str(exc)
        bars.finish(job.key, False, "failed", "endpoint error")
        return outcome, []
    outcome.record = record
    if not succeeded:
        error = record.get("error") if job.via == "sqs" else job_error_from_status(record)
        outcome.error = f"{error.get('code')}: {error.get('message')}" if isinstance(error, Mapping) else str(error)
        bars.finish(job.key, False, state_word(str(record.get("status") or record.get("state"))))
        return outcome, outputs
    s3 = await _aws_client(info, "s3")
    missing = await _check_in_s3(s3, outputs)
    job_id = str(record.get("id") or record.get("job_id") or "")
    outcome.files = await download_outputs(outputs, out_dir / job.key, job_id=job_id or None, s3_client=s3)
    if not outputs:
        outcome.error = "the job succeeded but reported no outputs"
    elif missing:
        outcome.error = "outputs missing in S3: " + "; ".join(missing)
    elif len(outcome.files) != len(made := [o for o in outputs if not o.get("role")]):
        outcome.error = f"saved {len(outcome.files)} of {len(made)} outputs"
    outcome.ok = outcome.error is None
    count = f"{len(outputs)} output" + ("" if len(outputs) == 1 else "s")
    bars.finish(job.key, outcome.ok, "done" if outcome.ok else "failed", count)
    return outcome, outputs


async def run_demo_jobs(
    info: StackInfo, out_dir: Path, out: Console, jobs: list[DemoJob] | None = None
) -> list[DemoOutcome]:
    jobs = demo_jobs() if jobs is None else jobs
    async with RunPodCli(EndpointTarget.from_stack_env(info.client_env)) as api:
        with JobBars(out) as bars:
            for job in jobs:
                bars.add(job.key, job.label)
            results = await asyncio.gather(*(_one(api, info, job, bars, out_dir) for job in jobs))
    for job, (outcome, outputs) in zip(jobs, results, strict=True):
        out.rule(job.label)
        record = outcome.record
        if job.via == "runpod":
            print_record(out, record, outputs)
        else:
            result = record.get("result")
            timings = result.get("timings") if isinstance(result, Mapping) else None
            total_ms = timings.get("total_ms") if isinstance(timings, Mapping) else None
            status_like = {"id": record.get("job_id"), "status": record.get("state"), "executionTime": total_ms}
            print_record(out, status_like, outputs)
            out.print(
                f"  record: attempt {record.get('attempt')}, runpod id {record.get('runpod_id')}, "
                f"version {record.get('version')}",
                markup=False,
            )
        if outcome.error and job.via == "runpod" and record:
            print_job_error(out, job_error_from_status(record))
    return list(r[0] for r in results)
