"""Typed coercion of parameter and override values. Each function returns the coerced value or raises
``ValueError`` with a message that completes ``input.params.<name>: ...``."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "RANDOM_SEED",
    "SEED_MAX",
    "coerce_bool",
    "coerce_choice",
    "coerce_float",
    "coerce_int",
    "coerce_like",
    "coerce_seed",
    "coerce_string",
]

#: A seed value meaning "pick one at random" (ComfyUI's frontend uses the same convention in several node packs).
RANDOM_SEED = -1
#: KSampler's own bound (``/object_info``: max 18446744073709551615).
SEED_MAX = 2**64 - 1

_INT_TEXT = re.compile(r"^[+-]?\d+$")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bounds(value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ValueError(f"must be >= {_number(minimum)} (got {_number(value)})")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be <= {_number(maximum)} (got {_number(value)})")


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def coerce_int(value: Any, minimum: float | None = None, maximum: float | None = None) -> int:
    result: int
    if isinstance(value, bool):
        raise ValueError(f"must be an integer (got {_describe(value)})")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and _INT_TEXT.match(value.strip()):
        result = int(value.strip())
    else:
        raise ValueError(f"must be an integer (got {_describe(value)})")
    _bounds(result, minimum, maximum)
    return result


def coerce_float(value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    result: float
    if isinstance(value, bool):
        raise ValueError(f"must be a number (got {_describe(value)})")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise ValueError(f"must be a number (got {_describe(value)})") from None
    else:
        raise ValueError(f"must be a number (got {_describe(value)})")
    if not math.isfinite(result):
        raise ValueError(f"must be a finite number (got {_describe(value)})")
    _bounds(result, minimum, maximum)
    return result


def coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be a boolean (got {_describe(value)})")


def coerce_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"must be a string (got {_describe(value)})")


def coerce_choice(value: Any, choices: Sequence[Any]) -> Any:
    for choice in choices:
        # 1 == True in Python: compare types too, so a bool never passes for an int choice.
        if value == choice and type(value) is type(choice):
            return choice
    shown = ", ".join(_describe(c) for c in choices[:20]) + (", ..." if len(choices) > 20 else "")
    raise ValueError(f"must be one of [{shown}] (got {_describe(value)})")


def coerce_seed(value: Any, minimum: float | None = None, maximum: float | None = None) -> int:
    """An explicit seed, or :data:`RANDOM_SEED`; the caller replaces the latter with a random one."""
    try:
        seed = coerce_int(value)
    except ValueError:
        raise ValueError(
            f"must be an integer seed, or {RANDOM_SEED} for a random one (got {_describe(value)})"
        ) from None
    if seed == RANDOM_SEED:
        return seed
    low = 0 if minimum is None else minimum
    high = SEED_MAX if maximum is None else maximum
    if not low <= seed <= high:
        raise ValueError(f"must be between {_number(low)} and {_number(high)}, or {RANDOM_SEED} for a random seed")
    return seed


def coerce_like(value: Any, current: Any) -> Any:
    """An override takes the type of the value it replaces: a number stays a number (int if it can), a bool a
    bool, a string a string. Links, lists and objects are replaced by the value as given."""
    if isinstance(current, bool):
        return coerce_bool(value)
    if isinstance(current, int):
        try:
            return coerce_int(value)
        except ValueError:
            # An int in the graph may be a float input written without a fraction (cfg: 8): accept 7.5.
            return coerce_float(value)
    if isinstance(current, float):
        return coerce_float(value)
    if isinstance(current, str):
        return coerce_string(value)
    return value
