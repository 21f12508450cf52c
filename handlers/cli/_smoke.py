"""``comfy-relay smoke``: run every template of the library (or a profile's, or the ones named) once, with its
defaults and sample inputs, and print a table: template, status, time to first output, total time, outputs.

The command ops run after deploying an image. Three targets, one job path each:
- ``--endpoint ID`` (a real RunPod endpoint) or ``--local`` (the local stack's): RunPod ``/run``, followed the way
  ``comfy-relay run --wait`` follows a job (``/stream``, then ``/status``);
- ``--comfyui URL``: no worker and no RunPod: the worker's own job path (``WorkerRuntime.run_job``) runs in this
  process against that ComfyUI. Outputs go to ``RELAY_S3_BUCKET`` when it is set, else they are kept in memory
  (counted and measured, then dropped).

Exit status: 0 every job succeeded with at least one output; 1 any did not; 2 nothing was run (an unknown template
or profile, a worker configuration error).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.cli._console import console, error_console
from handlers.cli._state_dir import add_state_dir_argument

if TYPE_CHECKING:
    from rich.console import Console

    from handlers.worker import MemoryOutputStore, WorkerRuntime

__all__ = [
    "KeptInMemory",
    "SmokeJob",
    "SmokeRow",
    "endpoint_runner",
    "in_process_runner",
    "register",
    "render_table",
    "saver",
    "select_templates",
    "smoke_jobs",
    "worker_runtime",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: The bucket name outputs are "stored" under when ``--comfyui`` runs without RELAY_S3_BUCKET (kept in memory).
MEMORY_BUCKET = "comfy-relay-smoke-memory"

EXAMPLES = """examples:
  comfy-relay smoke --endpoint abc123xyz            every template on a deployed endpoint (RUNPOD_API_KEY)
  comfy-relay smoke --endpoint abc123xyz --profile sdxl --json
  comfy-relay smoke --local                         the local stack (`comfy-relay local up`)
  comfy-relay smoke --comfyui http://127.0.0.1:8188 --template image/sdxl-basic"""


class SelectionError(ValueError):
    """The templates asked for do not exist (unknown name or profile)."""


@dataclass(frozen=True)
class SmokeJob:
    """One template to run: its full name (``ava/image/sdxl-basic`` for a character's copy) and the job input."""

    template: str
    input: dict[str, Any] | None
    #: Why no job input could be made (a required input with no sample): the row fails without running.
    problem: str | None = None


@dataclass
class SmokeRow:
    template: str
    ok: bool = False
    status: str = "not run"
    job_id: str | None = None
    #: Seconds from submission to the first output stored (None: no output was seen).
    first_output_s: float | None = None
    total_s: float = 0.0
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    #: Files written under ``--out``.
    saved: list[str] = field(default_factory=list)

    def finish(self, *, status: str, outputs: list[dict[str, Any]], error: str | None) -> None:
        self.status, self.outputs, self.error = status, outputs, error
        if error is None and not outputs:
            self.error = "the job succeeded but reported no outputs"
        self.ok = self.error is None

    def outputs_text(self) -> str:
        """``2 image (832x1216, 1024x1024)``: count per kind, and the sizes its outputs have. Outputs derived from
        others (a ``role`` such as a thumbnail) are counted apart: the table shows what the graph made."""
        made = [o for o in self.outputs if not o.get("role")]
        parts = []
        for kind, count in Counter(str(o.get("kind", "?")) for o in made).items():
            of_kind = [o for o in made if o.get("kind") == kind]
            sizes = dict.fromkeys(f"{o['width']}x{o['height']}" for o in of_kind if o.get("width") and o.get("height"))
            parts.append(f"{count} {kind}" + (f" ({', '.join(sizes)})" if sizes else ""))
        derived = len(self.outputs) - len(made)
        return ", ".join(parts + ([f"+{derived} derived"] if derived else [])) or "-"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------ selection


def select_templates(profile: str | None, names: Sequence[str]) -> list[str]:
    """Full template names to run: those named, else a profile's (from the image lock), else every template of the
    library and every character's own copy (as ``comfy-relay templates list`` shows them)."""
    from handlers.workflow import default_workflows_dir, list_templates  # noqa: PLC0415

    library = [f"{c}/{n}" if c else n for c, n in list_templates(default_workflows_dir())]
    if names:
        unknown = [n for n in names if n not in library]
        if unknown:
            raise SelectionError(f"unknown template(s): {', '.join(unknown)} (see `comfy-relay templates list`)")
        return list(dict.fromkeys(names))
    if profile is not None:
        from handlers.image import LockError, load_lock  # noqa: PLC0415
        from handlers.image._cli import default_lock_path  # noqa: PLC0415

        lock = load_lock(default_lock_path())
        try:
            chosen = lock.profile(profile).templates
        except LockError as exc:
            raise SelectionError(str(exc)) from exc
        return [n for n in chosen if n in library]
    return library


def smoke_jobs(templates: Sequence[str]) -> list[SmokeJob]:
    """Each template's job with its defaults and sample inputs (``demo --all``'s jobs, one per template)."""
    from handlers.local.stack import sample_job  # noqa: PLC0415 - pillow
    from handlers.workflow import default_workflows_dir, load_template  # noqa: PLC0415

    root = default_workflows_dir()
    jobs = []
    for full in templates:
        character, _, name = full.partition("/") if full.count("/") == 2 else ("", "", full)
        template = load_template(root, name, character=character or None)
        try:
            jobs.append(SmokeJob(full, sample_job(template)))
        except ValueError as exc:
            jobs.append(SmokeJob(full, None, problem=str(exc)))
    return jobs


def _job_id(template: str) -> str:
    return f"smoke-{uuid.uuid4().hex[:8]}-{template.replace('/', '-')}"


# -------------------------------------------------------------------------------------------------- runners

Runner = Callable[[SmokeJob, SmokeRow], Awaitable[None]]


async def _run_all(
    jobs: Sequence[SmokeJob], runner: Runner, parallel: int, on_event: Callable[[SmokeRow, bool], None]
) -> list[SmokeRow]:
    """Run the jobs, ``parallel`` at a time; ``on_event(row, ended)`` as each starts and ends."""
    slots = asyncio.Semaphore(parallel)
    rows = [SmokeRow(job.template) for job in jobs]

    async def one(job: SmokeJob, row: SmokeRow) -> None:
        async with slots:
            if job.input is None:
                row.finish(status="not run", outputs=[], error=job.problem)
            else:
                on_event(row, False)
                started = time.monotonic()
                try:
                    await runner(job, row)
                except Exception as exc:  # one broken job (endpoint error, lost worker) must not hide the others
                    row.finish(status="error", outputs=row.outputs, error=f"{type(exc).__name__}: {exc}")
                row.total_s = round(time.monotonic() - started, 3)
            on_event(row, True)

    await asyncio.gather(*(one(job, row) for job, row in zip(jobs, rows, strict=True)))
    return rows


#: Saves a finished job's outputs (``--out``): the row and each output's bytes when they are only in memory.
Saver = Callable[[SmokeRow, dict[str, bytes]], Awaitable[None]]


def saver(out_dir: Path, *, s3_client: Any = None, trust_env: bool = True) -> Saver:
    """Save each output under ``out_dir/<template>/`` as ``run --out`` names them (``<job id>_<file name>``)."""
    from handlers.cli._follow import download_outputs  # noqa: PLC0415

    async def save(row: SmokeRow, blobs: dict[str, bytes]) -> None:
        items = [
            {**o, "base64": base64.b64encode(blobs[o["s3_uri"]]).decode("ascii")} if o.get("s3_uri") in blobs else o
            for o in row.outputs
        ]
        dest = out_dir / row.template.replace("/", "-")
        paths = await download_outputs(
            items, dest, job_id=row.job_id, force=True, s3_client=s3_client, trust_env=trust_env
        )
        row.saved = [str(p) for p in paths]

    return save


def endpoint_runner(api: Any, *, timeout_s: float, poll_s: float, save: Saver | None = None) -> Runner:
    """Submit through RunPod ``/run`` and follow the job as ``comfy-relay run --wait`` does."""
    from handlers.cli._follow import follow_job, result_outputs, state_word  # noqa: PLC0415
    from handlers.cli._runpod_client import TERMINAL_STATUSES, RunPodApiError  # noqa: PLC0415

    async def run(job: SmokeJob, row: SmokeRow) -> None:
        assert job.input is not None
        started = time.monotonic()
        submitted = await api.run({**job.input, "job_id": _job_id(job.template)})
        row.job_id = str(submitted["id"])
        result = await follow_job(api, row.job_id, poll_interval_s=poll_s, timeout_s=timeout_s)
        if result.first_output_at is not None:
            row.first_output_s = round(result.first_output_at - started, 3)
        if result.ok:
            row.finish(status="ok", outputs=result_outputs(result.status), error=None)
            if save is not None:
                await save(row, {})
            return
        if result.state not in TERMINAL_STATUSES:
            # Still queued or running after --timeout: cancel it, a smoke test must not leave GPU work behind.
            with contextlib.suppress(RunPodApiError):
                await api.cancel(row.job_id)
            row.finish(
                status="timed out", outputs=[], error=f"not done after {timeout_s:g}s ({result.state}); cancelled"
            )
            return
        error = result.job_error()
        detail = f"{error.get('code')}: {error.get('message')}" if error.get("code") else str(error or result.state)
        row.finish(status=state_word(result.state), outputs=[], error=detail)

    return run


class KeptInMemory:
    """The store factory of ``--comfyui`` without RELAY_S3_BUCKET: one in-memory store per job, whose objects are
    handed over (and forgotten) when the job ends, so memory does not grow with the library."""

    def __init__(self) -> None:
        self.stores: list[MemoryOutputStore] = []

    def __call__(self, bucket: str, prefix: str) -> MemoryOutputStore:
        from handlers.worker import MemoryOutputStore  # noqa: PLC0415

        store = MemoryOutputStore(bucket, prefix)
        self.stores.append(store)
        return store

    def release(self, job_id: str) -> dict[str, bytes]:
        """The job's objects by ``s3://`` URI, removed from memory."""
        found: dict[str, bytes] = {}
        for store in self.stores:
            for key in [k for k in store.objects if job_id in k.split("/")]:
                found[f"s3://{store.bucket}/{key}"] = store.objects.pop(key)
        self.stores = [store for store in self.stores if store.objects]
        return found


def in_process_runner(
    runtime: WorkerRuntime, *, timeout_s: float, kept: KeptInMemory | None = None, save: Saver | None = None
) -> Runner:
    """The worker's job path in this process: the events ``run_job`` yields are what the handler would send."""
    from handlers.contract import OutputReadyEvent  # noqa: PLC0415
    from handlers.worker import Finished  # noqa: PLC0415

    async def run(job: SmokeJob, row: SmokeRow) -> None:
        assert job.input is not None
        started = time.monotonic()
        row.job_id = _job_id(job.template)
        finished: Finished | None = None
        try:
            async with asyncio.timeout(timeout_s):
                async with contextlib.aclosing(runtime.run_job({"id": row.job_id, "input": job.input})) as events:
                    async for event in events:
                        if isinstance(event, OutputReadyEvent) and row.first_output_s is None:
                            row.first_output_s = round(time.monotonic() - started, 3)
                        elif isinstance(event, Finished):
                            finished = event
        except TimeoutError:
            row.finish(status="timed out", outputs=[], error=f"no result after {timeout_s:g}s")
            return
        finally:
            blobs = kept.release(row.job_id) if kept is not None else {}
        assert finished is not None
        if finished.error is not None:
            row.finish(status="failed", outputs=[], error=finished.error.summary())
            return
        assert finished.result is not None
        outputs = [o.model_dump(mode="json", exclude_none=True) for o in finished.result.outputs]
        row.finish(status="ok", outputs=outputs, error=None)
        if save is not None:
            await save(row, blobs)

    return run


#: How long ``--comfyui`` waits for the ComfyUI to answer before nothing is run (a typo, a tunnel not up).
READY_TIMEOUT_S = 30.0


async def _comfyui_answers(runtime: WorkerRuntime, url: str) -> None:
    from handlers.worker.comfy import ComfyUIError  # noqa: PLC0415

    await runtime.start()
    try:
        await runtime.comfy.wait_ready(asyncio.get_running_loop().time() + READY_TIMEOUT_S)
    except ComfyUIError as exc:
        raise _Unusable(f"{exc} (waited {READY_TIMEOUT_S:g}s)") from exc


def worker_runtime(comfyui_url: str) -> tuple[WorkerRuntime, KeptInMemory | None]:
    """A worker runtime for ``comfyui_url``, configured from the environment as the worker would be (raises
    ``ConfigError``); without RELAY_S3_BUCKET its outputs are kept in memory (the second value) until each job ends."""
    from handlers.worker import MediaFetcher, MediaLimits, WorkerConfig, WorkerRuntime  # noqa: PLC0415

    config = dataclasses.replace(WorkerConfig.from_env(), comfyui_url=comfyui_url.rstrip("/"), comfyui_command=None)
    client_id = f"relay-smoke-{uuid.uuid4().hex[:8]}"
    if config.s3_bucket is not None:
        return WorkerRuntime(config, client_id=client_id), None
    config = dataclasses.replace(config, s3_bucket=MEMORY_BUCKET)
    kept = KeptInMemory()
    runtime = WorkerRuntime(
        config,
        store_factory=kept,
        fetcher=MediaFetcher(MediaLimits(max_bytes=config.media_max_bytes, allow_private=config.allow_private_urls)),
        client_id=client_id,
    )
    return runtime, kept


# -------------------------------------------------------------------------------------------------- output


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render_table(out: Console, rows: Sequence[SmokeRow], target: str) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"smoke test: {target}", title_justify="left")
    for column, justify in (("template", "left"), ("status", "left"), ("first output", "right"),
                            ("total", "right"), ("outputs", "left")):  # fmt: skip
        # Only the outputs wrap: a template name cut short would be useless to whoever reads the table.
        table.add_column(column, justify=justify, no_wrap=column != "outputs")  # type: ignore[arg-type]
    for row in rows:
        status = f"[green]{row.status}[/]" if row.ok else f"[red]{row.status}[/]"
        table.add_row(row.template, status, _seconds(row.first_output_s), _seconds(row.total_s), row.outputs_text())
    out.print(table)
    for row in rows:
        if not row.ok:
            job = f" (job {row.job_id})" if row.job_id else ""
            out.print(f"✗ {row.template}{job}: {row.error}", style="red", markup=False)
    failed = sum(not r.ok for r in rows)
    if failed:
        out.print(f"[red]{failed} of {len(rows)} templates failed[/]")
    else:
        out.print(f"[green]All {len(rows)} templates ran.[/]" if len(rows) > 1 else "[green]The template ran.[/]")


# --------------------------------------------------------------------------------------------------- command


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "smoke",
        help="run every template once on an endpoint, the local stack or a ComfyUI, and print a table",
        description="The command to run after deploying an image: every template of the library (or a profile's, "
        "or those named) once, with its defaults and sample inputs; a table of template, status, time to first "
        "output, total time and outputs; exit status 1 if any failed.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint", metavar="ID", help="a real RunPod endpoint (API key from RUNPOD_API_KEY)")
    where.add_argument("--local", action="store_true", help="the local stack's endpoint (`comfy-relay local up`)")
    where.add_argument(
        "--comfyui", metavar="URL", help="no worker: run the worker's job path in this process against this ComfyUI"
    )
    add_state_dir_argument(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--profile", help="only the templates of this image profile (worker_image/pins.json)")
    which.add_argument("--template", action="append", default=[], metavar="NAME", help="only this template (repeat)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N", help="jobs in flight at once (1)")
    parser.add_argument("--timeout", type=float, default=900.0, metavar="S", help="seconds per job (900)")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="save every output under DIR/<template>/ (<job id>_<file name>)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout, nothing else")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    err = error_console()
    if args.parallel < 1:
        err.print("comfy-relay smoke: --parallel must be at least 1", markup=False)
        return EXIT_USAGE
    try:
        jobs = smoke_jobs(select_templates(args.profile, args.template))
    except SelectionError as exc:
        err.print(f"comfy-relay smoke: {exc}", markup=False)
        return EXIT_USAGE
    out = console()
    progress: Callable[[SmokeRow, bool], None] = (
        (lambda row, ended: None) if args.json else (lambda row, ended: _progress_line(err, row, ended))
    )
    try:
        target, rows = asyncio.run(_smoke(args, jobs, progress))
    except _Unusable as exc:
        err.print(f"comfy-relay smoke: {exc}", markup=False)
        return EXIT_USAGE
    ok = all(row.ok for row in rows)
    if args.json:
        document = {"target": target, "ok": ok, "results": [row.to_json() for row in rows]}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        render_table(out, rows, target)
    return EXIT_OK if ok else EXIT_FAILED


def _progress_line(err: Console, row: SmokeRow, ended: bool) -> None:
    if not ended:
        err.print(f"… {row.template} started", markup=False)  # a training job may take an hour on a GPU
        return
    mark = "✓" if row.ok else "✗"
    err.print(f"{mark} {row.template} ({row.status}, {_seconds(row.total_s)})", markup=False)


class _Unusable(Exception):
    """The target cannot be used at all (no endpoint, a worker configuration error)."""


async def _smoke(
    args: argparse.Namespace, jobs: Sequence[SmokeJob], progress: Callable[[SmokeRow, bool], None]
) -> tuple[str, list[SmokeRow]]:
    if args.comfyui:
        from handlers.common import ConfigError  # noqa: PLC0415

        try:
            runtime, kept = worker_runtime(args.comfyui)
        except ConfigError as exc:
            raise _Unusable(str(exc)) from exc
        try:
            await _comfyui_answers(runtime, args.comfyui)
            save = saver(args.out.resolve()) if args.out is not None else None
            runner = in_process_runner(runtime, timeout_s=args.timeout, kept=kept, save=save)
            return f"ComfyUI {args.comfyui} (worker in process)", await _run_all(jobs, runner, args.parallel, progress)
        finally:
            await runtime.aclose()
    from handlers.cli._run import NoEndpoint, resolve_endpoint  # noqa: PLC0415
    from handlers.cli._runpod_client import RunPodApiError, RunPodCli  # noqa: PLC0415

    try:
        target, env = resolve_endpoint(args)
    except (NoEndpoint, RunPodApiError) as exc:  # no stack running, no API key: nothing can be run
        raise _Unusable(str(exc)) from exc
    save = None
    if args.out is not None:
        from handlers.cli._aws import stack_client  # noqa: PLC0415

        s3 = await asyncio.to_thread(stack_client, env, "s3") if env else None
        save = saver(args.out.resolve(), s3_client=s3, trust_env=not target.local)
    async with RunPodCli(target) as api:
        runner = endpoint_runner(api, timeout_s=args.timeout, poll_s=0.25 if target.local else 1.0, save=save)
        return f"RunPod endpoint {target.url}", await _run_all(jobs, runner, args.parallel, progress)
