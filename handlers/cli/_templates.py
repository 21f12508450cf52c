"""``comfy-relay templates list|show|schema``: the workflow library from the command line.

``list`` names every template (kind, the characters that have their own copy, description) and the characters;
``show NAME`` prints one template's parameters, models and custom nodes; ``schema NAME`` prints the JSON Schema of
its ``params``. ``--character`` applies a character's lookup and defaults. The library is ``--root``, else
``$RELAY_WORKFLOWS_DIR``, else the repository's ``workflows/``. Exit 0 on success, 1 when a template cannot be
loaded (each problem on its own line), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlers.workflow import Template


def _root(args: argparse.Namespace) -> Path:
    from handlers.workflow import default_workflows_dir  # noqa: PLC0415  (registration stays light)

    return Path(args.root) if args.root else default_workflows_dir()


def _load(args: argparse.Namespace) -> Template | None:
    from handlers.workflow import TemplateError, load_template  # noqa: PLC0415

    try:
        return load_template(_root(args), args.name, character=args.character)
    except TemplateError as exc:
        print(f"comfy-relay templates: {exc}", file=sys.stderr)
        return None


def _listing(root: Path) -> dict[str, Any]:
    from handlers.workflow import (  # noqa: PLC0415
        TemplateError,
        list_characters,
        list_templates,
        load_character,
        load_template,
    )

    templates: dict[str, dict[str, Any]] = {}
    for character, name in list_templates(root):
        entry = templates.setdefault(name, {"name": name, "kind": name.partition("/")[0], "characters": []})
        if character is not None:
            entry["characters"].append(character)
            continue
        try:
            template = load_template(root, name)
        except TemplateError as exc:
            entry["error"] = exc.message
            continue
        entry["description"] = template.manifest.description if template.manifest else ""
    # A character's pack (character.json) is checked like a template: its problems are listed, never skipped.
    character_errors: dict[str, str] = {}
    for character in list_characters(root):
        try:
            load_character(root, character)
        except TemplateError as exc:
            character_errors[character] = str(exc)
    return {
        "root": str(root),
        "templates": sorted(templates.values(), key=lambda t: t["name"]),
        "characters": list_characters(root),
        "character_errors": character_errors,
    }


def _first_sentence(text: str, limit: int = 100) -> str:
    sentence = text.split(". ", maxsplit=1)[0].split(": ", maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rsplit(" ", 1)[0] + "..."


def _run_list(args: argparse.Namespace) -> int:
    listing = _listing(_root(args))
    if args.json:
        sys.stdout.write(json.dumps(listing, indent=2) + "\n")
        return 0
    templates = listing["templates"]
    width = max((len(t["name"]) for t in templates), default=4)
    for entry in templates:
        if "error" in entry:
            note = f"INVALID: {entry['error']}"
        elif "description" not in entry:
            note = "(only in character folders)"
        else:
            note = _first_sentence(entry["description"]) or "(no manifest)"
        chars = f" [{', '.join(entry['characters'])}]" if entry["characters"] else ""
        print(f"{entry['name']:<{width}}  {note}{chars}")
    print(f"characters: {', '.join(listing['characters']) or 'none'}")
    for character, error in listing["character_errors"].items():
        print(f"INVALID character {character}: {error}")
    return 0


def _describe(template: Template) -> dict[str, Any]:
    from handlers.workflow._params import MISSING  # noqa: PLC0415

    params = []
    for name, spec in template.params().items():
        item: dict[str, Any] = {
            "name": name,
            "type": spec.type.value if spec.type else "any",
            "required": spec.required,
        }
        if spec.default is not MISSING:
            item["default"] = spec.default
        if spec.param is not None:
            for key in ("min", "max", "choices", "description"):
                value = getattr(spec.param, key)
                if value not in (None, ""):
                    item[key] = value
        params.append(item)
    manifest = template.manifest
    return {
        "name": template.name,
        "character": template.character,
        "path": str(template.path),
        "kind": template.kind,
        "description": manifest.description if manifest else "",
        "params": params,
        "models": [m.model_dump(exclude_none=True) for m in manifest.models] if manifest else [],
        "custom_nodes": [c.model_dump(exclude_none=True) for c in manifest.custom_nodes] if manifest else [],
    }


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _run_show(args: argparse.Namespace) -> int:
    template = _load(args)
    if template is None:
        return 1
    info = _describe(template)
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return 0
    print(f"{info['name']}" + (f" for {info['character']}" if info["character"] else "") + f"  ({info['path']})")
    if info["description"]:
        print(f"  {info['description']}")
    print("params:")
    for p in info["params"]:
        facts = [p["type"], "required" if p["required"] else ""]
        if "default" in p:
            facts.append(f"default {json.dumps(p['default'], ensure_ascii=False)}")
        if "min" in p or "max" in p:
            facts.append(f"range {_number(p.get('min'))}..{_number(p.get('max'))}")
        if "choices" in p:
            facts.append("one of " + ", ".join(map(str, p["choices"])))
        line = f"  {p['name']}: " + ", ".join(f for f in facts if f)
        print(line + (f" - {p['description']}" if "description" in p else ""))
    print("example:")
    print(f"  {_example(info)}")
    print("models:" + ("" if info["models"] else " none"))
    for m in info["models"]:
        print(f"  models/{m['folder']}/{m['file']}  <- {m['url']}")
    print("custom nodes:" + ("" if info["custom_nodes"] else " none"))
    for c in info["custom_nodes"]:
        print(f"  {c['repo']} @ {c['commit']}")
    return 0


_MEDIA_EXAMPLES = {"image": "photo.png", "mask": "mask.png", "audio": "voice.wav", "video": "clip.mp4"}


def _example(info: dict[str, Any]) -> str:
    """A command line that runs the template: every required parameter given, media as a local file (a path or a
    URL given to a media parameter is sent with the job)."""
    parts = ["comfy-relay run", info["name"]]
    if info["character"]:
        parts.append(f"--character {info['character']}")
    for p in info["params"]:
        if not p["required"]:
            continue
        if p["type"] in _MEDIA_EXAMPLES:
            value = _MEDIA_EXAMPLES[p["type"]]
        elif p["type"] in ("int", "float", "seed"):
            value = _number(p.get("min")) or "1"
        elif "choices" in p:
            value = str(p["choices"][0])
        else:
            value = '"..."'
        parts.append(f"-p {p['name']}={value}")
    return " ".join(parts) + " --wait --out out/"


def _run_schema(args: argparse.Namespace) -> int:
    template = _load(args)
    if template is None:
        return 1
    sys.stdout.write(json.dumps(template.params_schema(), indent=args.indent, ensure_ascii=False) + "\n")
    return 0


def _add_common(parser: argparse.ArgumentParser, *, named: bool) -> None:
    parser.add_argument("--root", help="the workflow library folder (default: $RELAY_WORKFLOWS_DIR or workflows/)")
    if named:
        parser.add_argument("name", help="'<kind>/<name>', e.g. image/sdxl-basic")
        parser.add_argument("--character", help="look the template up for this character (its folder and defaults)")


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "templates", help="list, show and describe workflow templates"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every template and character in the library")
    _add_common(listing, named=False)
    listing.add_argument("--json", action="store_true", help="print the listing as JSON")
    listing.set_defaults(run=_run_list)
    show = actions.add_parser("show", help="one template's parameters, models and custom nodes")
    _add_common(show, named=True)
    show.add_argument("--json", action="store_true", help="print the description as JSON")
    show.set_defaults(run=_run_show)
    schema = actions.add_parser("schema", help="the JSON Schema of one template's params")
    _add_common(schema, named=True)
    schema.add_argument("--indent", type=int, default=2, help="spaces per indent level (default 2)")
    schema.set_defaults(run=_run_schema)
