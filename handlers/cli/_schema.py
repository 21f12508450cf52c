"""``comfy-relay schema``: print the JSON Schema of a job's ``input`` (generated from ``contract.JobInput``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _run(args: argparse.Namespace) -> int:
    # Imported when the command runs: registration stays free of pydantic for `comfy-relay --help`.
    from handlers.contract import job_input_schema  # noqa: PLC0415

    text = json.dumps(job_input_schema(), indent=args.indent, sort_keys=True)
    sys.stdout.write(text + "\n")
    return 0


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("schema", help="print the JSON Schema of a job's input")
    parser.add_argument("--indent", type=int, default=2, help="spaces per indent level (default 2)")
    parser.set_defaults(run=_run)
