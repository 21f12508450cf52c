"""The frontend's dynamic prompts: ``{a|b|c}`` picks one option at queue time, in STRING widgets marked
``dynamicPrompts`` (CLIPTextEncode.text, ...). Comments (``/* */`` and ``//`` to the end of a line) are removed
first - including the ``//`` in a URL, exactly as the frontend does. ``\\{``, ``\\|`` and ``\\}`` are literal.
"""

from __future__ import annotations

import random
import re

__all__ = ["resolve_dynamic_prompt"]

_COMMENTS = re.compile(r"/\*[\s\S]*?\*/|//.*")
_ESCAPABLE = frozenset("{}|")


def resolve_dynamic_prompt(text: str, rng: random.Random) -> str:
    """``text`` with comments removed and every ``{...|...}`` group replaced by one of its options."""
    stripped = _COMMENTS.sub("", text)
    result, _ = _parse(stripped, 0, rng, top=True)
    return result


def _parse(text: str, start: int, rng: random.Random, *, top: bool) -> tuple[str, int]:
    """Parse from ``start`` until the end (top level) or the ``}`` closing the current group.

    Returns the chosen text and the index just past what was consumed.
    """
    options: list[list[str]] = [[]]
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            # The frontend keeps the backslash out of the result and the character in.
            options[-1].append(text[i + 1])
            i += 2
            continue
        if char == "{":
            chosen, i = _parse(text, i + 1, rng, top=False)
            options[-1].append(chosen)
            continue
        if not top and char == "|":
            options.append([])
            i += 1
            continue
        if not top and char == "}":
            return "".join(rng.choice(options)), i + 1
        options[-1].append(char)
        i += 1
    # Unclosed group at the end of the text: choose among what was read.
    return "".join(rng.choice(options) if not top else options[0]), i
