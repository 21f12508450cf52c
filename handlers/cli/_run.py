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

__all__ = ["register", "resolve_endpoint"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint", metavar="ID", help="a real RunPod endpoint (API key from RUNPOD_API_KEY)")
    where.add_argument("--local", action="store_true", help="the local stack's endpoint (`comfy-relay local up`)")
    parser.add_argument("--state-dir", type=Path, default=None, help="local stack state folder (default .comfy-relay/)")
    parser.add_argument("--json", action="store_true", help="machine-readable output only")


def job_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's input, as ``run`` and ``enqueue`` both take it; :func:`job_input_from_args` reads it back."""
    parser.add_argument("target", metavar="TARGET", help="workflow JSON file, or template name <kind>/<name>")
    parser.add_argument("--character", help="look the template up in this character's folder first")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="a parameter (repeat)")
    parser.add_argument(
        "--override", action="append", default=[], metavar="NODE.INPUT=VALUE", help="set any node input (repeat)"
    )
    parser.add_argument("--media", action="append", default=[], metavar="NAME=PATH|URL", help="an input file (repeat)")


def register(commands: Any) -> None:
    run: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="run a workflow file or a template on a RunPod endpoint (real or local)",
        description="Submit a job: TARGET is a workflow file (API or UI format) or a template name such as "
        "image/sdxl-basic. Parameters are typed by the template's schema and checked before anything is sent.",
    )
    job_input_arguments(run)
    run.add_argument("--wait", action="store_true", help="follow the job with a live progress bar until it ends")
    run.add_argument("--out", type=Path, help="download the outputs into this folder (implies --wait)")
    run.add_argument("--timeout", type=float, default=600.0, metavar="S", help="how long --wait waits (600)")
    _endpoint_arguments(run)
    run.set_defaults(run=_run)

    status = commands.add_parser("status", help="show a job's status and record")
    status.add_argument("job_id", metavar="JOB")
    _endpoint_arguments(status)
    status.set_defaults(run=_status)

    cancel = commands.add_parser("cancel", help="cancel a job")
    cancel.add_argument("job_id", metavar="JOB")
    _endpoint_arguments(cancel)
    cancel.set_defaults(run=_cancel)


class _NoEndpoint(Exception):
    pass


def resolve_endpoint(args: argparse.Namespace) -> tuple[Any, dict[str, str]]:
    """The endpoint to talk to and, for the local stack, its client environment (for S3 downloads)."""
    from handlers.cli._runpod_client import EndpointTarget  # noqa: PLC0415
    from handlers.local.stack import default_state_dir, read_state  # noqa: PLC0415

    if args.endpoint:
        return EndpointTarget.from_env(args.endpoint), {}
    configured = os.environ.get("RUNPOD_ENDPOINT_ID", "").strip()
    if configured and not args.local:
        return EndpointTarget.from_env(configured), {}
    state_dir = (args.state_dir or default_state_dir()).resolve()
    info = read_state(state_dir)
    if info is None:
        raise _NoEndpoint(
            f"no local stack is running (state folder {state_dir}): start one with `comfy-relay local up`, "
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
    except (_NoEndpoint, RunPodApiError) as exc:
        err.print(f"comfy-relay run: {exc}", markup=False)
        return EXIT_FAILED


async def _submit(args: argparse.Namespace, target: Any, env: dict[str, str], job_input: dict[str, Any]) -> int:
    from handlers.cli._aws import stack_client  # noqa: PLC0415
    from handlers.cli._console import JobBars  # noqa: PLC0415
    from handlers.cli._follow import (  # noqa: PLC0415
        download_outputs,
        follow_job,
        print_job_error,
        print_record,
        result_outputs,
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
                bars.finish(job_id, result.ok, result.state.lower())
    outputs = result_outputs(result.status) if result.ok else []
    saved: list[Path] = []
    if result.ok and args.out is not None:
        saved = await download_outputs(
            outputs, args.out.resolve(), s3_client=stack_client(env, "s3"), trust_env=not target.local
        )
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
            print_job_error(error_console(), result.job_error(), prefix=f"job {result.state.lower()}")
    return EXIT_OK if result.ok else EXIT_FAILED


def _status(args: argparse.Namespace) -> int:
    return _simple(args, "status")


def _cancel(args: argparse.Namespace) -> int:
    return _simple(args, "cancel")


def _simple(args: argparse.Namespace, action: str) -> int:
    from handlers.cli._follow import job_error_from_status, print_job_error, print_record, result_outputs  # noqa: PLC0415
    from handlers.cli._runpod_client import RunPodApiError, RunPodCli  # noqa: PLC0415

    async def call() -> dict[str, Any]:
        target, _ = resolve_endpoint(args)
        async with RunPodCli(target) as api:
            return await (api.status(args.job_id) if action == "status" else api.cancel(args.job_id))

    try:
        answer = asyncio.run(call())
    except (_NoEndpoint, RunPodApiError) as exc:
        error_console().print(f"comfy-relay {action}: {exc}", markup=False)
        return EXIT_FAILED
    if args.json:
        _emit_json(answer)
    else:
        out = console()
        print_record(out, answer, result_outputs(answer) if answer.get("status") == "COMPLETED" else [])
        if answer.get("status") in ("FAILED", "TIMED_OUT"):
            print_job_error(out, job_error_from_status(answer), prefix=f"job {str(answer['status']).lower()}")
    return EXIT_OK
