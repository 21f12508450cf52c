"""Building blocks shared by the contract models: strict and open base models, safe tokens, canonical JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "JOB_ID_PATTERN",
    "NAME_PATTERN",
    "PARAM_NAME_PATTERN",
    "JobId",
    "Loc",
    "Name",
    "OpenModel",
    "StrictModel",
    "canonical_json",
    "is_job_id",
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


def canonical_json(value: Any) -> str:
    """One spelling per value (sorted keys, no spaces), so digests of equal inputs are equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


Loc = tuple[int | str, ...]


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
        errors = [
            InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {})) for e in exc.errors()
        ]
        raise ValidationError.from_exception_data(title, [*errors, *cross]) from None
    if cross:
        raise ValidationError.from_exception_data(title, cross)
    return result
