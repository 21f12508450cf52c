"""The ``comfy-relay`` command.

Each sub-command lives in its own module with a ``register(subparsers)`` function. Registration imports nothing
heavy: a command imports what it needs when it runs, so ``comfy-relay --help`` works on the base install.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from handlers.cli import (
    _aws,
    _convert,
    _demo,
    _deploy,
    _emulate_comfyui,
    _emulate_runpod,
    _jobs,
    _local,
    _run,
    _schema,
    _smoke,
    _templates,
    _validate,
)
from handlers.image._cli import register_image, register_models

__all__ = ["build_parser", "main"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("comfy-relay")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfy-relay", description="Serverless ComfyUI generation: worker, dispatch and local stack."
    )
    parser.add_argument("--version", action="version", version=f"comfy-relay {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    emulate = commands.add_parser("emulate", help="serve a faithful emulator of ComfyUI or RunPod on loopback")
    services = emulate.add_subparsers(dest="service", required=True, metavar="SERVICE")
    _emulate_comfyui.register(services)
    _emulate_runpod.register(services)
    _convert.register(commands)
    _validate.register(commands)
    _schema.register(commands)
    _aws.register(commands)
    _deploy.register(commands)
    _local.register(commands)
    _demo.register(commands)
    _smoke.register(commands)
    _run.register(commands)
    _jobs.register(commands)
    _templates.register(commands)
    register_image(commands)
    register_models(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # e.g. a port already in use: one clear line, not a traceback
        print(f"comfy-relay: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
