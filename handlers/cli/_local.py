"""``comfy-relay local up|status|down``: the embedded local stack, supervised in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from handlers.cli._console import console, error_console
from handlers.cli._state_dir import add_state_dir_argument, no_stack_message, state_dir

if TYPE_CHECKING:
    from rich.console import Console

    from handlers.local.stack import StackConfig, StackInfo

__all__ = ["register", "stack_config", "terminate_on_sigterm"]

_WATCH_INTERVAL_S = 0.5
_DOWN_TIMEOUT_S = 15.0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def register(commands: Any) -> None:
    local: argparse.ArgumentParser = commands.add_parser("local", help="the embedded local stack (no GPU, no cloud)")
    actions = local.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser(
        "up",
        help="start and supervise moto, the ComfyUI and RunPod emulators, workers and the Lambda event sources",
        description="Start every part of the local stack on loopback, print the endpoints and the environment a "
        "client needs, and supervise them until Ctrl-C or SIGTERM (which stop everything).",
    )
    _stack_arguments(up)
    up.add_argument("--workers", type=_positive_int, default=1, help="worker processes (default 1)")
    up.add_argument(
        "--stream",
        action="store_true",
        help="run the workers in streaming mode (RELAY_STREAM=1); default: result mode, as a default deployment",
    )
    up.add_argument("--json", action="store_true", help="print the stack description as JSON once it is up")
    up.set_defaults(run=_up)
    status = actions.add_parser("status", help="show the running stack (endpoints, pids, environment)")
    add_state_dir_argument(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_status)
    down = actions.add_parser("down", help="stop the stack started by `local up` (sends it SIGTERM)")
    add_state_dir_argument(down)
    down.set_defaults(run=_down)
    env = actions.add_parser("env", help="print `export` lines for a client of the running stack")
    add_state_dir_argument(env)
    env.set_defaults(run=_env)


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    add_state_dir_argument(parser, "state, logs and data")
    parser.add_argument(
        "--port-base", type=int, default=None, help="first of four consecutive ports (default 8480; 0: free ports)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address every part listens on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=30.0, metavar="S", help="how long each part may take to start (30)"
    )


def stack_config(
    *,
    state_dir: Path,
    port_base: int | None = None,
    host: str = "127.0.0.1",
    workers: int = 1,
    stream: bool = False,
    ready_timeout_s: float = 30.0,
) -> StackConfig:
    """The stack's settings from the command line and the environment (``COMFYUI_URL`` selects a real ComfyUI)."""
    from handlers.local.stack import DEFAULT_PORT_BASE, StackConfig  # noqa: PLC0415

    def folder(name: str) -> Path | None:
        value = os.environ.get(name, "").strip()
        return Path(value) if value else None

    return StackConfig(
        state_dir=state_dir,
        host=host,
        port_base=DEFAULT_PORT_BASE if port_base is None else port_base,
        workers=workers,
        stream=stream,
        comfyui_url=os.environ.get("COMFYUI_URL", "").strip() or None,
        comfyui_input_dir=folder("COMFYUI_INPUT_DIR"),
        comfyui_output_dir=folder("COMFYUI_OUTPUT_DIR"),
        ready_timeout_s=ready_timeout_s,
    )


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt while the block runs, so ``finally`` clauses tear the stack
    down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGHUP too: closing the terminal that runs `local up` must not orphan the stack.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def print_stack(out: Console, info: StackInfo) -> None:
    from handlers.local.runpod import export_lines  # noqa: PLC0415

    out.print("[bold]Endpoints[/]")
    for name, url in sorted(info.urls.items()):
        out.print(f"  {name:<12} {url}", markup=False)
    out.print("[bold]Processes[/]")
    for name, pid in info.pids.items():
        out.print(f"  {name:<12} pid {pid}", markup=False)
    for note in info.notes:
        out.print(f"  note: {note}", style="yellow", markup=False)
    out.print("[bold]Client environment[/] (`eval $(comfy-relay local env)`):")
    for line in export_lines(info.client_env):
        out.print(f"  {line}", markup=False)


def _up(args: argparse.Namespace) -> int:
    from handlers.local.stack import LocalStack, StackError, read_state  # noqa: PLC0415

    out = console()
    folder = state_dir(args)
    running = read_state(folder)
    if running is not None:
        error_console().print(
            f"comfy-relay local up: a stack is already running (pid {running.supervisor_pid}, state in {folder}); "
            "stop it with `comfy-relay local down` or use another --state-dir",
            markup=False,
        )
        return 1
    config = stack_config(
        state_dir=folder,
        port_base=args.port_base,
        host=args.host,
        workers=args.workers,
        stream=args.stream,
        ready_timeout_s=args.ready_timeout,
    )
    stack = LocalStack(config)
    stop = threading.Event()
    with terminate_on_sigterm():
        try:
            info = stack.start()
            if args.json:
                sys.stdout.write(info.to_json() + "\n")
                sys.stdout.flush()
            else:
                print_stack(out, info)
                out.print(
                    f"Local stack is up. Logs in {config.log_dir}. Ctrl-C stops everything.",
                    style="green",
                    markup=False,
                )
            while not stop.wait(_WATCH_INTERVAL_S):
                failed = stack.failed()
                if failed:
                    for child in failed:
                        error_console().print(
                            f"comfy-relay local up: {child.name} exited with status {child.process.returncode}; "
                            f"its log ({child.log_path}) ends with:\n{child.log_tail()}",
                            markup=False,
                        )
                    return 1
        except StackError as exc:
            error_console().print(f"comfy-relay local up: {exc}", markup=False)
            return 1
        except KeyboardInterrupt:
            out.print("Stopping the local stack...")
            return 0
        finally:
            stack.stop()
    return 0  # pragma: no cover - the loop only ends by returning


def _status(args: argparse.Namespace) -> int:
    from handlers.local.stack import read_state  # noqa: PLC0415

    info = read_state(state_dir(args))
    if info is None:
        error_console().print(no_stack_message(args), markup=False)
        return 1
    if args.json:
        sys.stdout.write(info.to_json() + "\n")
    else:
        print_stack(console(), info)
    return 0


def _env(args: argparse.Namespace) -> int:
    from handlers.local.runpod import export_lines  # noqa: PLC0415
    from handlers.local.stack import read_state  # noqa: PLC0415

    info = read_state(state_dir(args))
    if info is None:
        error_console().print(f"{no_stack_message(args)}; start one with `comfy-relay local up`", markup=False)
        return 1
    sys.stdout.write("\n".join(export_lines(info.client_env)) + "\n")
    return 0


def _down(args: argparse.Namespace) -> int:
    from handlers.local.stack import STATE_FILE, pid_alive, read_state  # noqa: PLC0415

    folder = state_dir(args)
    info = read_state(folder)
    if info is None:
        error_console().print(no_stack_message(args), markup=False)
        return 1
    os.kill(info.supervisor_pid, signal.SIGTERM)
    # The supervisor removes its state file once every child is gone (its own pid may linger as a zombie until
    # its parent reaps it, so the file is the signal).
    state_file = folder / STATE_FILE
    waited = threading.Event()
    deadline = time.monotonic() + _DOWN_TIMEOUT_S
    while state_file.exists() and pid_alive(info.supervisor_pid) and time.monotonic() < deadline:
        waited.wait(0.1)
    if state_file.exists() and pid_alive(info.supervisor_pid):
        error_console().print(f"the stack (pid {info.supervisor_pid}) did not stop in time", markup=False)
        return 1
    console().print("Local stack stopped.")
    return 0
