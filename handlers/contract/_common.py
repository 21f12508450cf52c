"""Building blocks shared by the contract models: strict and open base models, safe tokens, canonical JSON."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, get_args

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError, core_schema

__all__ = [
    "JOB_ID_PATTERN",
    "MAX_JSON_DEPTH",
    "NAME_PATTERN",
    "PARAM_NAME_PATTERN",
    "JobId",
    "Loc",
    "Name",
    "OpenModel",
    "StrictModel",
    "canonical_json",
    "is_job_id",
    "json_shape_problem",
    "with_cross_checks",
]

#: Job ids end up in S3 keys, ComfyUI prompt ids, DynamoDB keys and file names: letters, digits, ``_`` and ``-``.
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
#: Template path segments, characters, media names: tokens that can never climb out of a folder.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
#: Parameter names: identifiers, so templates can use them in ``"{{name}}"`` placeholders.
PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)

JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class StrictModel(BaseModel):
    """What we accept from callers: unknown fields are errors, so a misspelt option is never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OpenModel(BaseModel):
    """Bodies written by others (RunPod): keep fields we do not know instead of failing on a new one."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def is_job_id(value: str) -> bool:
    return _JOB_ID_RE.fullmatch(value) is not None


#: How deep a caller's JSON value (a graph, a parameter) may nest. Real workflows stay under ~10 levels; the bound
#: keeps every recursive reader (deepcopy, json.dumps, pydantic) far from Python's recursion limit.
MAX_JSON_DEPTH: Final = 64


def json_shape_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """What makes ``value`` unfit to travel as JSON through the system, or ``None``: nesting deeper than
    ``max_depth``, or a number JSON cannot carry (``1e999`` parses as infinity). Iterative and linear, so it is
    safe to run on hostile input before anything recursive touches it."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, float) and not math.isfinite(current):
            return "holds a number JSON cannot carry (NaN or infinity)"
        if isinstance(current, dict | list | tuple):
            if depth >= max_depth:
                return f"is nested more than {max_depth} levels deep"
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children)
    return None


def canonical_json(value: Any) -> str:
    """One spelling per value (sorted keys, no spaces), so digests of equal inputs are equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


Loc = tuple[int | str, ...]

#: pydantic's own error types: only these can be re-raised by name; any other (ours, a nested model's
#: ``cross_field``) must travel as a custom error carrying its message.
_BUILTIN_ERROR_TYPES: Final = frozenset(get_args(core_schema.ErrorType))


def _reraisable(error: ErrorDetails) -> InitErrorDetails:
    """One error of a ``ValidationError`` in the form ``ValidationError.from_exception_data`` accepts again."""
    kind = error["type"]
    if kind in _BUILTIN_ERROR_TYPES:
        return InitErrorDetails(type=kind, loc=error["loc"], input=error["input"], ctx=error.get("ctx", {}))
    # The message is already rendered: no context, so braces in it are never read as placeholders.
    return InitErrorDetails(type=PydanticCustomError(kind, error["msg"]), loc=error["loc"], input=error["input"])


def with_cross_checks(title: str, data: Any, handler: Callable[[Any], Any], problems: Sequence[tuple[Loc, str]]) -> Any:
    """Run pydantic's field validation (``handler``) and report its errors together with cross-field ``problems``
    found on the raw ``data``: an ``after`` validator would only run once every field is valid, and the caller
    must see every problem at once."""
    cross = [
        InitErrorDetails(type=PydanticCustomError("cross_field", message), loc=loc, input=data)
        for loc, message in problems
    ]
    try:
        result = handler(data)
    except ValidationError as exc:
        if not cross:
            raise
        errors = [_reraisable(e) for e in exc.errors()]
        raise ValidationError.from_exception_data(title, [*errors, *cross]) from None
    if cross:
        raise ValidationError.from_exception_data(title, cross)
    return result
