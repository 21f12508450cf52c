"""Validation problems as ``{path, message}`` pairs, so every problem of a job is reported at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from handlers.contract._common import JOB_ID_PATTERN, NAME_PATTERN, PARAM_NAME_PATTERN, StrictModel

__all__ = ["Problem", "format_path", "validation_problems"]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_:-]*")
#: Regular expressions said in words, for the patterns a caller is most likely to trip over.
_PATTERN_WORDS = {
    JOB_ID_PATTERN: "must be 1-128 letters, digits, '_' or '-', starting with a letter or digit",
    NAME_PATTERN: "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit",
    PARAM_NAME_PATTERN: "must be an identifier: letters, digits and '_', not starting with a digit",
}


class Problem(StrictModel):
    """One thing wrong with a job, addressed by a dotted path such as ``input.params.width``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def format_path(root: str, loc: Iterable[int | str]) -> str:
    """``("media", 0, "url")`` under ``input`` gives ``input.media[0].url``; keys that are not identifiers are
    quoted (``input.overrides["KSampler.seed"]``) so a dotted key is not read as two levels."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]".replace("'", '"')
    return path


def _message(error: Any) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    # Messages in the DESIGN's own words ("must be <= 4096") for the constraints a caller meets most.
    templates = {
        "missing": "is required",
        "extra_forbidden": "is not a known field",
        "less_than_equal": "must be <= {le}",
        "less_than": "must be < {lt}",
        "greater_than_equal": "must be >= {ge}",
        "greater_than": "must be > {gt}",
        "string_too_short": "must have at least {min_length} character(s)",
        "string_too_long": "must have at most {max_length} character(s)",
        "too_short": "must have at least {min_length} item(s)",
        "too_long": "must have at most {max_length} item(s)",
        "string_pattern_mismatch": "must match {pattern}",
        "literal_error": "must be one of {expected}",
        "enum": "must be one of {expected}",
    }
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_WORDS:
        return _PATTERN_WORDS[ctx["pattern"]]
    template = templates.get(kind)
    if template is not None:
        try:
            return template.format(**ctx)
        except (KeyError, IndexError):
            pass
    message: str = error["msg"]
    # Errors raised by our own validators read "Value error, <ours>": the prefix is noise to a caller.
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _loc(loc: Sequence[int | str]) -> list[int | str]:
    # pydantic inserts the member name of a tagged union (``function-after[...]`` etc.) into locations.
    return [part for part in loc if not (isinstance(part, str) and ("[" in part and part.endswith("]")))]


def validation_problems(exc: ValidationError, root: str = "input") -> list[Problem]:
    """Every error of a pydantic ``ValidationError`` as a :class:`Problem` whose path starts with ``root``."""
    return [Problem(path=format_path(root, _loc(error["loc"])), message=_message(error)) for error in exc.errors()]
