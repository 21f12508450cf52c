"""``comfy-relay validate API.json``: check a graph against an /object_info catalogue, as ComfyUI would.

Exit 0 when valid (warnings are printed), 1 when invalid (one line per problem), 2 on a usage error. A UI workflow
is converted first.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from handlers.cli._convert import CommandError, add_catalogue_options, load_object_info, read_json


def _run(args: argparse.Namespace) -> int:
    from handlers.workflow import ConversionError, ui_to_api, validate  # noqa: PLC0415  (registration stays light)
    from handlers.workflow._ui_model import is_ui_workflow  # noqa: PLC0415

    try:
        document = read_json(args.graph)
        object_info = load_object_info(args)
        graph = ui_to_api(document, object_info) if is_ui_workflow(document) else document
    except (CommandError, ConversionError) as exc:
        print(f"comfy-relay validate: {exc}", file=sys.stderr)
        return 1
    report = validate(graph, object_info, check_upload_combos=args.check_upload_combos)
    if args.json:
        body = {"valid": report.valid, "issues": [i.as_dict() for i in report.issues]}
        if not report.valid:
            body["comfyui_body"] = report.comfyui_body()
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        for issue in report.issues:
            print(issue)
        errors, warnings = len(report.errors), len(report.warnings)
        verdict = "valid" if report.valid else "invalid"
        print(f"{args.graph}: {verdict} ({errors} error(s), {warnings} warning(s))")
    return 0 if report.valid else 1


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "validate", help="validate an API graph against an /object_info catalogue (exit 1 when invalid)"
    )
    parser.add_argument("graph", metavar="API.json", help="the API graph, or a UI workflow ('-' reads stdin)")
    add_catalogue_options(parser)
    parser.add_argument(
        "--check-upload-combos",
        action="store_true",
        help="also require LoadImage-style file names to be in the catalogue's list",
    )
    parser.add_argument("--json", action="store_true", help="print the issues (and ComfyUI's 400 body) as JSON")
    parser.set_defaults(run=_run)
