"""Workflow templates: lookup (character folder first), loading, and the checks a template must pass.

A template is a folder ``<root>/<kind>/<name>/`` (or ``<root>/<character>/<kind>/<name>/``) holding
``workflow.json`` (an API-format graph) and, optionally, ``template.json`` (a :class:`TemplateManifest`).
Its name is ``<kind>/<name>``. A character folder may hold ``character.json`` (a :class:`CharacterProfile`)
whose defaults apply to any template run for that character. Reading files is the only I/O here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from handlers.contract import ErrorCode, JobError, Problem, format_path, validation_problems
from handlers.workflow._character import CharacterProfile
from handlers.workflow._manifest import TemplateManifest
from handlers.workflow._node_refs import NodeIndex, NodeRefError
from handlers.workflow._params import ParamSpec, param_specs

__all__ = [
    "CHARACTER_FILE",
    "MANIFEST_FILE",
    "WORKFLOW_FILE",
    "Template",
    "TemplateError",
    "TemplateInvalidError",
    "TemplateNotFoundError",
    "check_template",
    "find_placeholders",
    "list_templates",
    "load_character",
    "load_template",
    "placeholder_name",
]

WORKFLOW_FILE = "workflow.json"
MANIFEST_FILE = "template.json"
CHARACTER_FILE = "character.json"

_SEGMENT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_CHARACTER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class TemplateError(Exception):
    """A template could not be used; ``problems`` says why, each with a path."""

    code = ErrorCode.INTERNAL
    retryable = False

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "".join(f"\n  {p}" for p in self.problems)

    def to_job_error(self, job_id: str | None = None) -> JobError:
        return JobError(code=self.code, message=self.message, job_id=job_id, problems=self.problems)


class TemplateNotFoundError(TemplateError, LookupError):
    """No template (or character) of that name."""

    code = ErrorCode.TEMPLATE_NOT_FOUND


class TemplateInvalidError(TemplateError, ValueError):
    """The template's files are broken: unreadable JSON, a bad manifest, binds to nodes that do not exist."""

    code = ErrorCode.WORKFLOW_INVALID


def placeholder_name(value: Any, aliases: Mapping[str, str] | None = None) -> str | None:
    """``"{{prompt}}"`` (a whole input value) names the parameter ``prompt``; so does a template's own placeholder
    string mapped to it in ``aliases`` (``{"__CHORUS_PROMPT__": "prompt"}``). Anything else names none."""
    if isinstance(value, str):
        text = value.strip()
        if aliases and text in aliases:
            return aliases[text]
        match = _PLACEHOLDER.fullmatch(text)
        if match:
            return match.group(1)
    return None


def find_placeholders(
    graph: Mapping[str, Any], aliases: Mapping[str, str] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """Placeholder name → the ``(node id, input)`` pairs holding it, in graph order (``aliases``: see
    :func:`placeholder_name`)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        for input_name, value in inputs.items():
            name = placeholder_name(value, aliases)
            if name is not None:
                found.setdefault(name, []).append((node_id, input_name))
    return found


def _graph_problems(graph: Any) -> list[Problem]:
    if not isinstance(graph, Mapping) or not graph:
        return [Problem(path="workflow", message="must be a non-empty API-format graph (an object of nodes)")]
    if isinstance(graph.get("nodes"), list) and isinstance(graph.get("links"), list):
        return [Problem(path="workflow", message="is a UI workflow: templates need the API format ('Export (API)')")]
    problems = []
    for node_id, node in graph.items():
        if not (
            isinstance(node, Mapping)
            and isinstance(node.get("class_type"), str)
            and isinstance(node.get("inputs", {}), Mapping)
        ):
            problems.append(Problem(path=format_path("workflow", [node_id]), message="needs class_type and inputs"))
    return problems


def check_template(graph: Any, manifest: TemplateManifest | None) -> list[Problem]:
    """Every problem of a template: graph shape, binds to unknown nodes or inputs or ambiguous titles, parameters
    that set nothing, and node inputs claimed by two parameters."""
    problems = _graph_problems(graph)
    if problems or manifest is None:
        return problems
    index = NodeIndex(graph)
    placeholders = find_placeholders(graph, manifest.placeholders)
    owner: dict[tuple[str, str], str] = {}
    for param in manifest.params:
        base = format_path("template", ["params", param.name])
        if not param.binds and param.name not in placeholders:
            own = [text for text, name in manifest.placeholders.items() if name == param.name]
            shown = " or ".join(f'"{text}"' for text in [f"{{{{{param.name}}}}}", *own])
            problems.append(Problem(path=base, message=f"binds no node input and the graph has no {shown}"))
        targets: list[tuple[str, str]] = []
        for i, bind in enumerate(param.binds):
            try:
                targets.append((index.resolve_input(bind.node, bind.input), bind.input))
            except NodeRefError as exc:
                problems.append(Problem(path=f"{base}.binds[{i}]", message=str(exc)))
        for target in targets + placeholders.get(param.name, []):
            other = owner.setdefault(target, param.name)
            if other != param.name:
                problems.append(
                    Problem(path=base, message=f"node {target[0]} input {target[1]!r} is already bound by {other!r}")
                )
    return problems


def _read_json(path: Path, problem_path: str) -> tuple[Any, list[Problem]]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), []
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(path=problem_path, message=f"cannot be read: {exc}")]
    except json.JSONDecodeError as exc:
        return None, [Problem(path=problem_path, message=f"is not valid JSON: {exc}")]


def _check_name(name: str) -> tuple[str, str]:
    kind, sep, base = name.partition("/")
    if not sep or not _SEGMENT.fullmatch(kind) or not _SEGMENT.fullmatch(base):
        raise TemplateNotFoundError(
            f"template name {name!r} must be '<kind>/<name>' (lowercase letters, digits, '_', '.', '-')",
            [Problem(path="input.template", message="must be '<kind>/<name>'")],
        )
    return kind, base


def _check_character(character: str) -> None:
    if not _CHARACTER.fullmatch(character):
        raise TemplateNotFoundError(
            f"character name {character!r} is not a valid name",
            [Problem(path="input.character", message="must be letters, digits, '_', '.' or '-'")],
        )


def load_character(root: Path, character: str) -> CharacterProfile:
    """The character's profile; a character folder without ``character.json`` has an empty one."""
    _check_character(character)
    folder = root / character
    if not folder.is_dir():
        raise TemplateNotFoundError(
            f"unknown character {character!r}", [Problem(path="input.character", message="no such character")]
        )
    path = folder / CHARACTER_FILE
    if not path.is_file():
        return CharacterProfile(name=character)
    document, problems = _read_json(path, CHARACTER_FILE)
    if not problems:
        try:
            return CharacterProfile.model_validate(document)
        except ValidationError as exc:
            problems = validation_problems(exc, root="character")
    raise TemplateInvalidError(f"character {character!r}: {path} is invalid", problems)


@dataclass(frozen=True)
class Template:
    """A loaded, checked template."""

    name: str
    """``<kind>/<name>``."""
    path: Path
    graph: Mapping[str, Any]
    manifest: TemplateManifest | None = None
    character: str | None = None
    """The character it was looked up for (its folder may or may not have its own copy)."""
    profile: CharacterProfile | None = None
    placeholders: Mapping[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.name.partition("/")[0]

    def params(self) -> dict[str, ParamSpec]:
        """Every parameter a caller may give: the manifest's, then placeholders it does not declare."""
        return param_specs(self.placeholders, self.manifest, self.profile)

    def params_schema(self) -> dict[str, Any]:
        """JSON Schema of this template's ``params`` object, from its manifest, placeholders and character."""
        specs = self.params()
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"params of {self.name}" + (f" for {self.character}" if self.character else ""),
            "type": "object",
            "properties": {name: spec.json_schema() for name, spec in specs.items()},
            "additionalProperties": False,
        }
        required = [name for name, spec in specs.items() if spec.required]
        if required:
            schema["required"] = required
        if self.manifest is not None and self.manifest.description:
            schema["description"] = self.manifest.description
        return schema


def _template_dir(root: Path, kind: str, base: str, character: str | None) -> Path | None:
    candidates = ([root / character / kind / base] if character is not None else []) + [root / kind / base]
    return next((c for c in candidates if (c / WORKFLOW_FILE).is_file()), None)


def load_template(root: Path, name: str, character: str | None = None) -> Template:
    """Find ``name`` (``<kind>/<name>``) under ``root`` - in the character's folder first - load it and check it.
    Raises :class:`TemplateNotFoundError` or :class:`TemplateInvalidError` (with every problem found)."""
    kind, base = _check_name(name)
    profile = load_character(root, character) if character is not None else None
    folder = _template_dir(root, kind, base, character)
    if folder is None:
        looked = f"{character}/{name} or {name}" if character else name
        raise TemplateNotFoundError(
            f"no template {looked} under {root}", [Problem(path="input.template", message=f"unknown template {name!r}")]
        )
    graph, problems = _read_json(folder / WORKFLOW_FILE, WORKFLOW_FILE)
    manifest: TemplateManifest | None = None
    if (folder / MANIFEST_FILE).is_file():
        document, manifest_problems = _read_json(folder / MANIFEST_FILE, MANIFEST_FILE)
        problems += manifest_problems
        if not manifest_problems:
            try:
                manifest = TemplateManifest.model_validate(document)
            except ValidationError as exc:
                problems += validation_problems(exc, root="template")
        if manifest is not None and manifest.kind != kind:
            problems.append(Problem(path="template.kind", message=f"is {manifest.kind!r} but the folder says {kind!r}"))
    if not problems:
        problems = check_template(graph, manifest)
    if problems:
        raise TemplateInvalidError(f"template {name} ({folder}) is invalid", problems)
    return Template(
        name=name,
        path=folder,
        graph=graph,
        manifest=manifest,
        character=character,
        profile=profile,
        placeholders=find_placeholders(graph, manifest.placeholders if manifest is not None else None),
    )


def _templates_in(folder: Path) -> Iterator[str]:
    for kind in sorted(p for p in folder.iterdir() if p.is_dir() and _SEGMENT.fullmatch(p.name)):
        for base in sorted(p for p in kind.iterdir() if p.is_dir() and _SEGMENT.fullmatch(p.name)):
            if (base / WORKFLOW_FILE).is_file():
                yield f"{kind.name}/{base.name}"


def list_templates(root: Path) -> list[tuple[str | None, str]]:
    """Every template as ``(character or None, name)``. A top-level folder is a character when it has a
    ``character.json`` or holds ``<kind>/<name>/`` folders of its own rather than templates."""
    found: list[tuple[str | None, str]] = []
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        is_character = (folder / CHARACTER_FILE).is_file() or not any(
            (sub / WORKFLOW_FILE).is_file() for sub in folder.iterdir() if sub.is_dir()
        )
        if is_character:
            found.extend((folder.name, name) for name in _templates_in(folder))
        else:
            found.extend(
                (None, f"{folder.name}/{sub.name}")
                for sub in sorted(folder.iterdir())
                if sub.is_dir() and (sub / WORKFLOW_FILE).is_file()
            )
    return found
