"""``comfy-relay demo``: bring the local stack up (or reuse a running one) and show the product working end to end.

Runs real templates from ``workflows/`` both ways in (RunPod's ``/run`` API, and a message on the SQS queue), one
of them with several output nodes, with a live progress bar per job; prints each job's record and output links,
saves every output under a local folder, and exits 0 only if every job succeeded and every output is in S3.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.cli._console import console, error_console
from handlers.cli._state_dir import add_state_dir_argument, state_dir

if TYPE_CHECKING:
    from rich.console import Console

    from handlers.cli._demo_jobs import DemoOutcome as JobOutcome
    from handlers.local.stack import StackInfo

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="start the local stack (or reuse a running one) and run real templates through it",
        description="Bring the embedded local stack up, run real templates from workflows/ through it with a live "
        "progress bar per job, save the outputs, and exit 0 only if every job succeeded.",
    )
    parser.add_argument("--out", type=Path, default=Path("comfy-relay-demo"), help="where outputs are saved")
    add_state_dir_argument(parser)
    parser.add_argument(
        "--port-base", type=int, default=None, help="first port of a new stack (default 8480; 0: free ports)"
    )
    parser.add_argument("--fresh", action="store_true", help="start a new stack (on free ports) even if one is running")
    parser.add_argument(
        "--all",
        action="store_true",
        dest="all_templates",
        help="run every template of the library once, with its defaults and sample inputs",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from handlers.cli._local import stack_config, terminate_on_sigterm  # noqa: PLC0415
    from handlers.local.stack import LocalStack, StackError, read_state  # noqa: PLC0415

    out = console()
    folder = state_dir(args)
    info = None if args.fresh else read_state(folder)
    port_base = args.port_base
    if args.fresh:
        # Beside a running stack, not over it: its own state folder, and free ports unless told otherwise.
        folder = folder / f"fresh-{os.getpid()}"
        port_base = 0 if port_base is None else port_base
    stack: LocalStack | None = None
    with terminate_on_sigterm():
        try:
            if info is not None:
                out.print(f"Reusing the local stack started by pid {info.supervisor_pid} ({folder})")
            else:
                config = stack_config(state_dir=folder, port_base=port_base)
                stack = LocalStack(config)
                with out.status("Starting the local stack..."):
                    info = stack.start()
                out.print("Local stack is up:")
            _print_endpoints(out, info)
            outcomes = asyncio.run(_demo(info, args.out.resolve(), out, all_templates=args.all_templates))
        except StackError as exc:
            error_console().print(f"comfy-relay demo: {exc}", style="red", markup=False)
            return 1
        finally:
            if stack is not None:
                stack.stop()
    return _summary(out, outcomes)


def _print_endpoints(out: Console, info: StackInfo) -> None:
    for name, url in sorted(info.urls.items()):
        out.print(f"  {name:<12} {url}", markup=False)
    for note in info.notes:
        out.print(f"  note: {note}", style="yellow", markup=False)


def _summary(out: Console, outcomes: list[JobOutcome]) -> int:
    failed = [o for o in outcomes if not o.ok]
    for outcome in outcomes:
        if outcome.ok:
            out.print(f"✓ {outcome.label}", style="green", markup=False)
            for path in outcome.files:
                out.print(f"    saved {path}", markup=False)
        else:
            out.print(f"✗ {outcome.label}: {outcome.error}", style="red", markup=False)
    if failed:
        out.print(f"[red]{len(failed)} of {len(outcomes)} jobs failed[/]")
        return 1
    out.print(f"[green]All {len(outcomes)} jobs succeeded.[/]")
    return 0


async def _demo(info: StackInfo, out_dir: Path, out: Console, *, all_templates: bool = False) -> list[JobOutcome]:
    from handlers.cli._demo_jobs import DemoOutcome, library_jobs, run_demo_jobs  # noqa: PLC0415 - httpx, boto3

    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    missing = [part for part, present in _needed_parts(info).items() if not present]
    if missing:
        reason = (
            "the stack runs without " + " and ".join(missing) + (f" ({'; '.join(info.notes)})" if info.notes else "")
        )
        return [DemoOutcome(label="local stack", ok=False, error=reason)]
    return await run_demo_jobs(info, out_dir, out, library_jobs() if all_templates else None)


def _needed_parts(info: StackInfo) -> dict[str, bool]:
    return {
        "a worker": any(part.startswith("worker-") for part in info.parts),
        "the Lambda event sources": "events" in info.parts,
    }
