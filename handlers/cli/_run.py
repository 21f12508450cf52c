"""``comfy-relay run|status|cancel``: jobs on a RunPod endpoint, real (``--endpoint ID``, key from
``RUNPOD_API_KEY``) or the local stack's (``--local``, the default when no endpoint is configured).

Exit status: 0 the job completed (or was submitted, without ``--wait``); 1 it failed, was cancelled or timed out, or
the endpoint could not be reached; 2 the job was rejected before it was sent (the structured error says why).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from handlers.cli._console import console, error_console
from handlers.cli._state_dir import add_state_dir_argument, no_stack_message, state_dir

__all__ = ["NoEndpoint", "register", "resolve_endpoint"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

RUN_EXAMPLES = """examples:
  comfy-relay run image/sdxl-basic -p prompt="a lighthouse at dusk" -p seed=7 --wait --out out/
  comfy-relay run image/sdxl-inpaint -p image=photo.png -p mask=mask.png -p prompt="a red scarf" --wait
  comfy-relay run image/blur -p image=https://example.com/photo.png --wait   (a URL works like a path)
  comfy-relay run my-workflow.json -p prompt="..." --override KSampler.steps=30
  comfy-relay templates show NAME   (a template's parameters, with an example)"""


def _endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint", metavar="ID", help="a real RunPod endpoint (API key from RUNPOD_API_KEY)")
    where.add_argument("--local", action="store_true", help="the local stack's endpoint (`comfy-relay local up`)")
    add_state_dir_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout, nothing else")


def job_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's input, as ``run`` and ``enqueue`` both take it; :func:`job_input_from_args` reads it back."""
    parser.add_argument("target", metavar="TARGET", help="workflow JSON file, or template name <kind>/<name>")
    parser.add_argument("--character", help="look the template up in this character's folder first")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="a parameter (repeat)")
    parser.add_argument(
        "--override", action="append", default=[], metavar="NODE.INPUT=VALUE", help="set any node input (repeat)"
    )
    parser.add_argument(
        "--media",
        action="append",
        default=[],
        metavar="NAME=PATH|URL",
        help="an input file or URL for the media parameter NAME (repeat); `-p NAME=PATH` does the same",
    )
    parser.add_argument(
        "--dataset",
        metavar="FOLDER|ZIP|URL|S3",
        help="a LoRA training dataset: a folder of images and .txt captions, a zip, a zip's URL, or s3://bucket/prefix/",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="your own name for the job (project, sentence...): kept in the manifest, a field of --name (repeat)",
    )
    parser.add_argument(
        "--name", dest="output_name", metavar="PATTERN", help="output key pattern, e.g. 'projects/{project}/{node}'"
    )
    parser.add_argument(
        "--strip-metadata", action="store_true", help="deliver images without the workflow ComfyUI writes into them"
    )
    parser.add_argument(
        "--qa",
        choices=["report", "fail", "retry"],
        help="what failed output checks do: report (default), fail the job (qa_failed), or retry with new seeds",
    )


def register(commands: Any) -> None:
    run: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="run a workflow file or a template on a RunPod endpoint (real or local)",
        description="Submit a job: TARGET is a workflow file (API or UI format) or a template name such as "
        "image/sdxl-basic. Parameters are typed by the template's schema and checked before anything is sent.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    job_input_arguments(run)
    run.add_argument("--wait", action="store_true", help="follow the job with a live progress bar until it ends")
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="save the outputs into DIR as <job id>_<file name> (implies --wait); existing files are kept",
    )
    run.add_argument("--force", action="store_true", help="with --out: overwrite files that already exist")
    run.add_argument("--timeout", type=float, default=600.0, metavar="S", help="how long --wait waits (600)")
    _endpoint_arguments(run)
    run.set_defaults(run=_run)

    job_help = "a queue job id (from `enqueue`, or input.job_id) or a RunPod job id (from `run`): either finds the job"
    status = commands.add_parser(
        "status",
        help="show a job: state, progress, outputs with links, error",
        description="Show one job: its dispatch record (state, attempt, progress, outputs with links, error, QA) "
        "when it came through the queue, and RunPod's status.",
    )
    status.add_argument("job_id", metavar="JOB", help=job_help)
    status.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
    status.add_argument("--timeout", type=float, default=600.0, metavar="S", help="how long --wait waits (600)")
    _endpoint_arguments(status)
    status.set_defaults(run=_status)

    cancel = commands.add_parser(
        "cancel", help="cancel a job", description="Cancel a job's RunPod run; the record follows it to CANCELLED."
    )
    cancel.add_argument("job_id", metavar="JOB", help=job_help)
    _endpoint_arguments(cancel)
    cancel.set_defaults(run=_cancel)


class NoEndpoint(Exception):
    """No endpoint is named and no local stack is running."""


def resolve_endpoint(args: argparse.Namespace) -> tuple[Any, dict[str, str]]:
    """The endpoint to talk to and, for the local stack, its client environment (for S3 downloads)."""
    from handlers.cli._runpod_client import EndpointTarget  # noqa: PLC0415
    from handlers.local.stack import read_state  # noqa: PLC0415

    endpoint = getattr(args, "endpoint", None)  # `enqueue --wait` has no --endpoint: the queue decides
    if endpoint:
        return EndpointTarget.from_env(endpoint), {}
    configured = os.environ.get("RUNPOD_ENDPOINT_ID", "").strip()
    if configured and not args.local:
        return EndpointTarget.from_env(configured), {}
    info = read_state(state_dir(args))
    if info is None:
        raise NoEndpoint(
            f"{no_stack_message(args)}: start one with `comfy-relay local up`, "
            "or name a real endpoint with --endpoint ID"
        )
    return EndpointTarget.from_stack_env(info.client_env), info.client_env


def _emit_json(document: object) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _run(args: argparse.Namespace) -> int:
    from handlers.cli._follow import print_job_error  # noqa: PLC0415
    from handlers.cli._job_input import JobInputError, job_input_from_args  # noqa: PLC0415
    from handlers.cli._runpod_client import RunPodApiError  # noqa: PLC0415

    err = error_console()
    try:
        job_input = job_input_from_args(args)
    except JobInputError as exc:
        if args.json:
            _emit_json({"status": "REJECTED", "error": exc.error.model_dump(mode="json", exclude_none=True)})
        else:
            print_job_error(err, exc.error.model_dump(mode="json", exclude_none=True), prefix="job rejected")
        return EXIT_INVALID
    try:
        target, env = resolve_endpoint(args)
        return asyncio.run(_submit(args, target, env, job_input))
    except (NoEndpoint, RunPodApiError) as exc:
        err.print(f"comfy-relay run: {exc}", markup=False)
        return EXIT_FAILED


async def _submit(args: argparse.Namespace, target: Any, env: dict[str, str], job_input: dict[str, Any]) -> int:
    from handlers.cli._aws import stack_client  # noqa: PLC0415
    from handlers.cli._console import JobBars  # noqa: PLC0415
    from handlers.cli._follow import (  # noqa: PLC0415
        OutputsExist,
        download_outputs,
        follow_job,
        print_job_error,
        print_record,
        result_outputs,
        state_word,
    )
    from handlers.cli._runpod_client import RunPodCli  # noqa: PLC0415

    out = console()
    wait = args.wait or args.out is not None
    async with RunPodCli(target) as api:
        submitted = await api.run(job_input)
        job_id = str(submitted["id"])
        if not wait:
            if args.json:
                _emit_json(submitted)
            else:
                out.print(f"submitted job {job_id} to {target.url} ({submitted.get('status')})", markup=False)
            return EXIT_OK
        poll = 0.25 if target.local else 1.0
        if args.json:
            result = await follow_job(api, job_id, poll_interval_s=poll, timeout_s=args.timeout)
        else:
            out.print(f"job {job_id} submitted to {target.url}", markup=False)
            with JobBars(out) as bars:
                bars.add(job_id, args.target)
                result = await follow_job(
                    api, job_id, bars=bars, key=job_id, poll_interval_s=poll, timeout_s=args.timeout
                )
                bars.finish(job_id, result.ok, state_word(result.state))
    outputs = result_outputs(result.status) if result.ok else []
    saved: list[Path] = []
    if result.ok and args.out is not None:
        try:
            saved = await download_outputs(
                outputs,
                args.out.resolve(),
                job_id=job_id,
                force=args.force,
                s3_client=stack_client(env, "s3"),
                trust_env=not target.local,
            )
        except OutputsExist as exc:
            error_console().print(f"comfy-relay run: job {job_id} completed, but its outputs were not saved: {exc}")
            return EXIT_FAILED
    if args.json:
        document: dict[str, Any] = dict(result.status)
        if saved:
            document["saved"] = [str(p) for p in saved]
        if not result.ok:
            document["job_error"] = result.job_error()
        _emit_json(document)
    else:
        print_record(out, result.status, outputs)
        for path in saved:
            out.print(f"  saved {path}", markup=False)
        if not result.ok:
            print_job_error(error_console(), result.job_error(), prefix=f"job {state_word(result.state)}")
    return EXIT_OK if result.ok else EXIT_FAILED


def _lookup(args: argparse.Namespace) -> Any:
    """A :class:`JobLookup` over the endpoint and the jobs table these arguments name (either may be absent)."""
    from handlers.cli._lookup import JobLookup, record_source  # noqa: PLC0415

    try:
        target, env = resolve_endpoint(args)
    except NoEndpoint:
        if not os.environ.get("RELAY_JOBS_TABLE", "").strip() or args.local:
            raise
        target, env = None, {}
    return JobLookup(target, record_source(args, env))


def _status(args: argparse.Namespace) -> int:
    from handlers.cli._follow import print_view  # noqa: PLC0415
    from handlers.cli._lookup import JobNotFound, JobView  # noqa: PLC0415
    from handlers.cli._runpod_client import RunPodApiError  # noqa: PLC0415

    err = error_console()
    if args.wait:
        try:
            return asyncio.run(wait_for_job(args, args.job_id, label=args.job_id))
        except (NoEndpoint, RunPodApiError, JobNotFound) as exc:
            err.print(f"comfy-relay status: {exc}", markup=False)
            return EXIT_FAILED

    async def find() -> JobView:
        async with _lookup(args) as lookup:
            view: JobView = await lookup.find(args.job_id)
            return view

    try:
        view = asyncio.run(find())
    except (NoEndpoint, RunPodApiError, JobNotFound) as exc:
        err.print(f"comfy-relay status: {exc}", markup=False)
        return EXIT_FAILED
    if args.json:
        _emit_json(view.to_json())
    else:
        print_view(console(), err, view)
    return EXIT_OK


async def wait_for_job(args: argparse.Namespace, job: str, *, label: str) -> int:
    """Follow ``job`` (either id) with a progress bar, or JSON at the end; the exit status says how it ended."""
    from handlers.cli._console import JobBars, ProgressView  # noqa: PLC0415
    from handlers.cli._follow import print_view, state_word  # noqa: PLC0415
    from handlers.cli._lookup import JobView  # noqa: PLC0415

    out, err = console(), error_console()
    async with _lookup(args) as lookup:
        if args.json:
            view: JobView = await lookup.follow(job, poll_interval_s=0.25, timeout_s=args.timeout)
        else:
            with JobBars(out) as bars:
                bars.add(job, label)

                def show(current: JobView) -> None:
                    progress = current.progress or {}
                    percent = progress.get("percent")
                    bars.update(
                        job,
                        ProgressView(
                            float(percent) if isinstance(percent, int | float) else 0.0,
                            node_title=progress.get("node_title"),
                            step=progress.get("step"),
                            steps=progress.get("step_max"),
                            status=None if current.progress else state_word(current.state),
                            eta_ms=progress.get("eta_ms"),
                        ),
                    )

                view = await lookup.follow(job, on_update=show, poll_interval_s=0.25, timeout_s=args.timeout)
                bars.finish(job, view.ok, state_word(view.state) if view.ended else "still running")
    if args.json:
        _emit_json(view.to_json())
    else:
        print_view(out, err, view)
    if not view.ended:
        err.print(f"comfy-relay: job {job} has not ended after {args.timeout:g}s", markup=False)
    return EXIT_OK if view.ok else EXIT_FAILED


def _cancel(args: argparse.Namespace) -> int:
    from handlers.cli._follow import print_view, state_word  # noqa: PLC0415
    from handlers.cli._lookup import JobNotFound, JobView  # noqa: PLC0415
    from handlers.cli._runpod_client import RunPodApiError  # noqa: PLC0415

    async def call() -> tuple[JobView, dict[str, Any] | None, JobView]:
        async with _lookup(args) as lookup:
            before, answer = await lookup.cancel(args.job_id)
            after = await lookup.find(args.job_id) if answer is not None else before
            return before, answer, after

    err = error_console()
    try:
        before, answer, after = asyncio.run(call())
    except (NoEndpoint, RunPodApiError, JobNotFound) as exc:
        err.print(f"comfy-relay cancel: {exc}", markup=False)
        return EXIT_FAILED
    if args.json:
        _emit_json({**after.to_json(), "cancel": answer})
        return EXIT_OK if answer is not None or before.ended else EXIT_FAILED
    out = console()
    if answer is None and before.ended:
        out.print(f"job {args.job_id} had already ended ({state_word(before.state)}): nothing to cancel", markup=False)
    elif answer is None:
        err.print(
            f"comfy-relay cancel: job {args.job_id} has no RunPod run to cancel yet ({before.state})", markup=False
        )
        return EXIT_FAILED
    else:
        out.print(f"cancel requested for RunPod job {after.runpod_id}", markup=False)
    print_view(out, err, after)
    return EXIT_OK
