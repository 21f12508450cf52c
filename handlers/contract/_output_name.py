"""``output.name``: the caller's pattern for output object keys, e.g. ``projects/{project}/images/{sentence}``.

Parsed once, from the job, into literal text and ``{field}`` references. A pattern is a relative key of plain
segments: no leading ``/``, no empty, ``.`` or ``..`` segment, no characters outside a small safe set, so whatever
values fill it the key stays under the store's prefix. Field values are made safe the same way when they are
rendered (a value can never add a segment). Which fields exist is known only once the workflow is bound
(parameters as bound, labels, the built-ins): ``handlers.workflow`` checks that.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BUILTIN_NAME_FIELDS",
    "MAX_NAME_PATTERN_CHARS",
    "NamePattern",
    "name_value",
]

MAX_NAME_PATTERN_CHARS: Final = 512
MAX_NAME_VALUE_CHARS: Final = 64
#: The longest key a pattern may render (values at their longest): with a prefix of up to 512 characters it stays
#: within S3's 1024-byte keys.
MAX_NAME_KEY_CHARS: Final = 500
_EXT_ROOM: Final = 8
#: Fields every output has: ``{job_id}``, ``{node}`` (its node id), ``{index}`` (its place in the node's list,
#: from 0), ``{ext}`` (the stored format's extension) and ``{variation}`` (its variation's index, from 0).
BUILTIN_NAME_FIELDS: Final = frozenset({"job_id", "node", "index", "ext", "variation"})
_FIELD: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
_LITERAL: Final = re.compile(r"^[A-Za-z0-9._=+@,/-]*$")
_UNSAFE_VALUE: Final = re.compile(r"[^A-Za-z0-9._=+@,-]+")


def name_value(value: str) -> str:
    """A field value as it appears in a key: ASCII letters, digits and ``._=+@,-``; every other run of characters
    becomes one ``-``; at most 64 characters; never empty, never only dots."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE_VALUE.sub("-", text).strip("-.")[:MAX_NAME_VALUE_CHARS].rstrip("-.")
    return text or "_"


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A parsed ``output.name``: ``parts`` alternate literal text (even indexes) and field names (odd)."""

    text: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> NamePattern:
        """Raise ``ValueError`` (one message naming the problem) for a pattern that is not a safe relative key."""
        if not text:
            raise ValueError("is empty")
        if len(text) > MAX_NAME_PATTERN_CHARS:
            raise ValueError(f"is longer than {MAX_NAME_PATTERN_CHARS} characters")
        if text.startswith("/"):
            raise ValueError("must be relative (no leading '/'): keys stay under the output prefix")
        parts = tuple(_FIELD.split(text))
        for literal in parts[0::2]:
            if "{" in literal or "}" in literal:
                raise ValueError("has a '{' or '}' that is not part of a '{field}' (fields are letters, digits, '_')")
            if not _LITERAL.match(literal):
                bad = sorted({c for c in literal if not _LITERAL.match(c)})
                raise ValueError(f"has characters keys do not take: {' '.join(repr(c) for c in bad)}")
        literal_chars = sum(len(p) for p in parts[0::2])
        longest = literal_chars + MAX_NAME_VALUE_CHARS * len(parts[1::2]) + _EXT_ROOM
        if longest > MAX_NAME_KEY_CHARS:
            raise ValueError(
                f"could render keys of {longest} characters (each field up to {MAX_NAME_VALUE_CHARS}); at most "
                f"{MAX_NAME_KEY_CHARS} fit under any prefix in S3's 1024-byte keys"
            )
        # Segments are checked with each field standing in as a non-empty token.
        skeleton = "".join(p if i % 2 == 0 else "F" for i, p in enumerate(parts))
        for segment in skeleton.split("/"):
            if segment == "":
                raise ValueError("has an empty segment ('//' or a trailing '/')")
            if set(segment) == {"."}:
                raise ValueError(f"has a {segment!r} segment: keys cannot climb out of the output prefix")
        return cls(text=text, parts=parts)

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names, in order of first use."""
        return tuple(dict.fromkeys(self.parts[1::2]))

    @property
    def has_ext(self) -> bool:
        return "ext" in self.parts[1::2]

    def render(self, values: Mapping[str, str]) -> str:
        """The key (relative to the prefix): every field replaced by its value made safe (:func:`name_value`), and
        ``.<ext>`` added when the pattern has no ``{ext}`` (the stored file always says what format it is).
        ``KeyError`` for a field ``values`` lacks."""
        out = [p if i % 2 == 0 else name_value(values[p]) for i, p in enumerate(self.parts)]
        key = "".join(out)
        if not self.has_ext and values.get("ext"):
            key = f"{key}.{name_value(values['ext'])}"
        return key
