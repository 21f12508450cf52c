"""Where the CLI finds the local stack: one ``--state-dir`` option for every command, one default (per user, so
any working directory finds the same stack), and one message that says where it looked."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_state_dir_argument", "no_stack_message", "state_dir"]


def add_state_dir_argument(parser: argparse.ArgumentParser, what: str = "the local stack's state folder") -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"{what} (default: $COMFY_RELAY_STATE_DIR, else ~/.local/state/comfy-relay)",
    )


def state_dir(args: argparse.Namespace) -> Path:
    from handlers.local.stack import default_state_dir  # noqa: PLC0415 - registration stays light

    chosen: Path | None = getattr(args, "state_dir", None)
    return (chosen.expanduser() if chosen is not None else default_state_dir()).resolve()


def no_stack_message(args: argparse.Namespace) -> str:
    """``no local stack is running (looked in DIR, from WHERE)``."""
    from handlers.local.stack import state_dir_origin  # noqa: PLC0415

    origin = "--state-dir" if getattr(args, "state_dir", None) is not None else state_dir_origin()
    return f"no local stack is running (looked in {state_dir(args)}, from {origin})"
