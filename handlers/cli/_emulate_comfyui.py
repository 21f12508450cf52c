"""``comfy-relay emulate comfyui``: serve the ComfyUI emulator on loopback until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number of seconds >= 0")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be an integer >= 0")
    return value


def register(services: Any) -> None:
    parser: argparse.ArgumentParser = services.add_parser(
        "comfyui",
        help="emulate ComfyUI 0.3.64 (HTTP + WebSocket, CPU nodes)",
        description="Serve a ComfyUI emulator. Prints 'ComfyUI emulator listening on <url>' once ready.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)",
    )
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument(
        "--models", type=Path, default=None, help="models folder: <folder>/<file> (default: DATA/models)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="holds input/, output/, temp/ (default: a temporary directory)"
    )
    parser.add_argument("--step-delay", type=_seconds, default=0.0, metavar="SECONDS", help="sleep per sampler step")
    faults = parser.add_argument_group("fault injection (also settable at POST /_emulator/faults)")
    faults.add_argument("--error-at", metavar="NODE", help="node id or class_type that fails with execution_error")
    faults.add_argument("--error-message", metavar="TEXT", help="the exception message of --error-at")
    faults.add_argument("--exit-at", metavar="NODE", help="node id or class_type at which the process exits at once")
    faults.add_argument("--exit-code", type=_count, metavar="CODE", help="exit status for --exit-at (default 1)")
    faults.add_argument("--hold-at", metavar="NODE", help="node that waits for POST /_emulator/release or an interrupt")
    faults.add_argument("--ws-drop-after", type=_count, metavar="N", help="close each WebSocket after N messages")
    faults.add_argument(
        "--history-delay",
        type=_seconds,
        metavar="SECONDS",
        help="/history answers {} for this long after a prompt ends",
    )
    faults.add_argument(
        "--history-delay-calls", type=_count, metavar="N", help="/history/{id} answers {} for the first N requests"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that ``comfy-relay --help`` works without the ``local`` extra.
    from handlers.local._serving import serve_forever  # noqa: PLC0415
    from handlers.local.comfyui import EmulatorConfig, Faults, create_app  # noqa: PLC0415

    faults = Faults()
    faults.update(
        {
            key: value
            for key, value in {
                "error_at": args.error_at,
                "error_message": args.error_message,
                "exit_at": args.exit_at,
                "exit_code": args.exit_code,
                "hold_at": args.hold_at,
                "ws_drop_after": args.ws_drop_after,
                "history_delay_seconds": args.history_delay,
                "history_delay_calls": args.history_delay_calls,
            }.items()
            if value is not None
        }
    )
    config = EmulatorConfig(data_dir=args.data_dir, models_dir=args.models, step_delay=args.step_delay, faults=faults)

    def ready(url: str) -> None:
        print(f"ComfyUI emulator listening on {url}", flush=True)

    serve_forever(lambda: create_app(config), args.host, args.port, ready)
    return 0
