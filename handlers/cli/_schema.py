"""``comfy-relay schema``: print the JSON Schema of a job's ``input`` (generated from ``contract.JobInput``), or with
``--character`` of a character pack's ``character.json`` (from ``workflow.CharacterProfile``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _run(args: argparse.Namespace) -> int:
    # Imported when the command runs: registration stays free of pydantic for `comfy-relay --help`.
    if args.character:
        from handlers.workflow import character_schema  # noqa: PLC0415

        schema = character_schema()
    else:
        from handlers.contract import job_input_schema  # noqa: PLC0415

        schema = job_input_schema()
    text = json.dumps(schema, indent=args.indent, sort_keys=True)
    sys.stdout.write(text + "\n")
    return 0


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("schema", help="print the JSON Schema of a job's input")
    parser.add_argument("--indent", type=int, default=2, help="spaces per indent level (default 2)")
    parser.add_argument(
        "--character", action="store_true", help="print the schema of a character pack (workflows/<c>/character.json)"
    )
    parser.set_defaults(run=_run)
