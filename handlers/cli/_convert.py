"""``comfy-relay convert UI.json``: print the API graph ComfyUI's frontend would queue for a UI workflow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OBJECT_INFO_TIMEOUT_S = 30.0


class CommandError(Exception):
    """A readable one-line failure of a command (bad file, unreachable ComfyUI, ...)."""


def read_json(path: str) -> Any:
    """The JSON document at ``path`` (``-`` is standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} is not JSON: {exc}") from exc


def load_object_info(args: argparse.Namespace) -> dict[str, Any]:
    """The /object_info catalogue named by ``--object-info FILE`` or fetched from ``--comfyui URL``."""
    if args.object_info:
        info = read_json(args.object_info)
    elif args.comfyui:
        import httpx  # noqa: PLC0415  (only this option needs an HTTP client)

        url = args.comfyui.rstrip("/") + "/object_info"
        try:
            response = httpx.get(url, timeout=OBJECT_INFO_TIMEOUT_S)
            response.raise_for_status()
            info = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise CommandError(f"cannot fetch {url}: {exc}") from exc
    else:
        raise CommandError("give the node catalogue: --object-info FILE or --comfyui URL")
    if not isinstance(info, dict):
        raise CommandError("the /object_info catalogue must be a JSON object of node classes")
    return info


def add_catalogue_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--object-info", metavar="FILE", help="an /object_info JSON file")
    source.add_argument("--comfyui", metavar="URL", help="a running ComfyUI to read /object_info from")


def _run(args: argparse.Namespace) -> int:
    from handlers.workflow import ConversionError, ui_to_api  # noqa: PLC0415  (registration stays light)
    from handlers.workflow._ui_model import is_ui_workflow  # noqa: PLC0415

    try:
        document = read_json(args.workflow)
        if not is_ui_workflow(document):
            raise CommandError(f"{args.workflow} is not a UI workflow (no 'nodes' list); API graphs need no conversion")
        graph = ui_to_api(document, load_object_info(args))
    except (CommandError, ConversionError) as exc:
        print(f"comfy-relay convert: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(graph, indent=args.indent) + "\n")
    return 0


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "convert", help="convert a UI workflow to the API graph ComfyUI's frontend would queue"
    )
    parser.add_argument("workflow", metavar="UI.json", help="the UI workflow ('-' reads standard input)")
    add_catalogue_options(parser)
    parser.add_argument("--indent", type=int, default=2, help="spaces per indent level (default 2)")
    parser.set_defaults(run=_run)
