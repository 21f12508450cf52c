"""Build a job's ``input`` from the command line, and check it here before anything is sent.

``TARGET`` is a workflow file (API or UI format) or a template name (``image/sdxl-basic``). ``--param k=v`` values
are typed by the template's parameter schema (``"12"`` becomes 12 for an ``int``); parameters a template does not
type (placeholders of a bare workflow) are read as JSON when they parse as a number, boolean, list or object, and
as text otherwise. ``--media name=path|url`` inlines a local file (base64) or passes a URL / ``s3://`` URI.

Every problem is reported at once as the same structured :class:`JobError` a worker would return.
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from handlers.cli._dataset import dataset_input
from handlers.contract import ErrorCode, JobError, JobInput, Problem, validation_problems

__all__ = ["JobInputError", "build_job_input", "job_input_from_args", "parse_assignments", "untyped_value"]

#: Types whose command-line text is the value itself (never read as JSON).
_TEXT_TYPES = frozenset({"string", "choice", "image", "mask", "audio", "video"})
_MEDIA_TYPES = frozenset({"image", "mask", "audio", "video"})


def _is_media_source(value: str, cwd: Path) -> bool:
    """A URL, an ``s3://`` URI, or a file that exists: something to send, not the name of a media item."""
    if value.startswith(("http://", "https://", "s3://")):
        return True
    return (cwd / value).expanduser().is_file()


class JobInputError(Exception):
    """The job cannot be built or would be rejected; ``error`` is the structured reason."""

    def __init__(self, error: JobError) -> None:
        super().__init__(error.summary())
        self.error = error


def _invalid(problems: list[Problem], code: ErrorCode = ErrorCode.INVALID_INPUT) -> JobInputError:
    return JobInputError(JobError.from_problems(problems, code=code))


def parse_assignments(items: Iterable[str], option: str, path: str) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a malformed or repeated item is a problem at ``path``."""
    values: dict[str, str] = {}
    problems = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(path=path, message=f"{option} {item!r}: expected NAME=VALUE"))
        elif key in values:
            problems.append(Problem(path=f"{path}.{key}", message=f"given twice with {option}"))
        else:
            values[key] = value
    if problems:
        raise _invalid(problems)
    return values


def untyped_value(text: str) -> Any:
    """A value no schema types: JSON when it is a number, boolean, null, list or object, else the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return text if isinstance(value, str) else value


def _media_item(name: str, source: str, cwd: Path) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        return {"name": name, "url": source}
    if source.startswith("s3://"):
        return {"name": name, "s3": source}
    path = (cwd / source).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _invalid(
            [Problem(path=f"input.media.{name}", message=f"cannot read {path}: {exc.strerror or exc}")]
        ) from None
    item: dict[str, Any] = {"name": name, "base64": base64.b64encode(data).decode()}
    mime = mimetypes.guess_type(path.name)[0]
    if mime:
        item["mime"] = mime
    return item


def _load_workflow(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise _invalid([Problem(path="input.workflow", message=f"cannot read {path}: {exc.strerror or exc}")]) from None
    except ValueError as exc:
        raise _invalid([Problem(path="input.workflow", message=f"{path} is not JSON: {exc}")]) from None
    if not isinstance(document, dict):
        raise _invalid([Problem(path="input.workflow", message=f"{path} holds no JSON object")])
    # A file saved from the template library or an API call may wrap the graph.
    inner = document.get("prompt") if "prompt" in document else document.get("workflow")
    return inner if isinstance(inner, dict) else document


def _typed_params(params: Mapping[str, str], types: Mapping[str, str]) -> dict[str, Any]:
    return {k: (v if types.get(k) in _TEXT_TYPES else untyped_value(v)) for k, v in params.items()}


def build_job_input(
    target: str,
    *,
    character: str | None = None,
    params: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    media: Mapping[str, str] | None = None,
    workflows_root: Path | None = None,
    cwd: Path | None = None,
    extra: Mapping[str, Any] | None = None,
    dataset: str | None = None,
) -> dict[str, Any]:
    """The job's ``input`` document. Raises :class:`JobInputError` with every problem found."""
    from handlers.workflow import (  # noqa: PLC0415 - the workflow package pulls in pydantic models
        BindingError,
        TemplateError,
        default_workflows_dir,
        load_template,
        resolve_graph,
        resolve_template,
    )

    cwd = cwd or Path.cwd()
    params = dict(params or {})
    overrides_typed = {k: untyped_value(v) for k, v in (overrides or {}).items()}
    items = [_media_item(name, source, cwd) for name, source in (media or {}).items()]
    document: dict[str, Any] = {"params": {}, "overrides": overrides_typed, "media": items, **(extra or {})}
    file = (cwd / target).expanduser()
    media_names = [item["name"] for item in items]
    if dataset is not None:
        document["dataset"], problems = dataset_input(dataset, cwd)
        if problems:
            raise _invalid(problems)
    try:
        if file.is_file() or target.endswith(".json"):
            if character is not None:
                raise _invalid([Problem(path="input.character", message="applies only with a template name")])
            graph = _load_workflow(file)
            document["workflow"] = graph
            typed = {k: untyped_value(v) for k, v in params.items()}
            document["params"] = typed
            from handlers.contract import GraphFormat, graph_format  # noqa: PLC0415

            if graph_format(graph) is GraphFormat.API:
                resolve_graph(graph, typed, overrides_typed, media_names=media_names)
        else:
            document["template"] = target
            if character is not None:
                document["character"] = character
            template = load_template(workflows_root or default_workflows_dir(), target, character=character)
            types = {p.name: p.type.value for p in template.manifest.params} if template.manifest else {}
            for name, value in list(params.items()):
                # `-p image=photo.png` (a path or URL given to a media parameter): the file becomes the media item
                # named after the parameter, which fills it.
                if types.get(name) not in _MEDIA_TYPES or value in media_names:
                    continue
                if _is_media_source(value, cwd):
                    items.append(_media_item(name, value, cwd))
                    media_names.append(name)
                    del params[name]
                else:  # the binder would say "names no media item": from a shell, a missing file is the likelier slip
                    problem = f"no file {(cwd / value).expanduser()}, and no --media item named {value!r}"
                    raise _invalid([Problem(path=f"input.params.{name}", message=problem)])

            document["media"] = items
            typed = _typed_params(params, types)
            # The worker names the staged folder: bind with a stand-in so the other parameters are still checked.
            staged = {"dataset": "dataset"} if dataset is not None else {}
            bound = resolve_template(template, {**typed, **staged}, overrides_typed, media_names=media_names)
            # Send what the schema made of each given value (e.g. 20, not "20"), so the worker sees typed JSON.
            document["params"] = {k: bound.params.get(k, v) for k, v in _typed_params(params, types).items()}
    except (BindingError, TemplateError) as exc:
        raise JobInputError(exc.to_job_error()) from None
    try:
        JobInput.model_validate(document)
    except ValidationError as exc:
        raise _invalid(validation_problems(exc)) from None
    return document


def job_input_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`build_job_input` from the options ``job_input_arguments`` (in ``_run``) registers."""
    extra: dict[str, Any] = {}
    labels = parse_assignments(getattr(args, "label", []), "--label", "input.labels")
    if labels:
        extra["labels"] = labels
    output: dict[str, Any] = {}
    if getattr(args, "output_name", None):
        output["name"] = args.output_name
    if getattr(args, "strip_metadata", False):
        output["strip_metadata"] = True
    if output:
        extra["output"] = output
    if getattr(args, "qa", None):
        extra["qa"] = {"policy": args.qa}
    return build_job_input(
        args.target,
        character=args.character,
        params=parse_assignments(args.param, "--param", "input.params"),
        overrides=parse_assignments(args.override, "--override", "input.overrides"),
        media=parse_assignments(args.media, "--media", "input.media"),
        dataset=getattr(args, "dataset", None),
        extra=extra,
    )
