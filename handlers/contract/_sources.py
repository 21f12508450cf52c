"""Where an input's bytes come from: the value checks shared by every model that takes a file (``MediaItem``,
``Dataset``): base64 payloads and data: URIs, http(s) URLs, ``s3://`` URIs, and "exactly one source"."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Annotated, Any, Final

from pydantic import AfterValidator, StringConstraints

from handlers.contract._common import Loc

__all__ = [
    "S3_URI",
    "HttpUrl",
    "check_base64",
    "check_http_url",
    "is_http_url",
    "one_source_problem",
    "strip_base64",
]

DATA_URI: Final = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*;base64,", re.ASCII)
S3_URI: Final = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$")
_HTTP_URL: Final = re.compile(r"^https?://[^\s/]+")


def strip_base64(value: str) -> tuple[str, str | None]:
    """Return the bare base64 payload and the MIME type a data URI declared."""
    match = DATA_URI.match(value)
    if match:
        return value[match.end() :], match.group("mime")
    return value, None


def check_base64(payload: str) -> None:
    try:
        base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not valid base64") from exc


def is_http_url(value: str) -> bool:
    return _HTTP_URL.match(value) is not None


def check_http_url(value: str) -> str:
    if not is_http_url(value):
        raise ValueError("must be an http(s) URL")
    return value


HttpUrl = Annotated[str, StringConstraints(max_length=4096), AfterValidator(check_http_url)]


def one_source_problem(data: Any, sources: Sequence[str]) -> tuple[Loc, str] | None:
    """The problem when ``data`` (a model's raw input) names none or several of ``sources``."""
    if not isinstance(data, dict):
        return None
    given = [s for s in sources if data.get(s) is not None]
    if len(given) == 1:
        return None
    return (), f"give exactly one of {', '.join(sources[:-1])} or {sources[-1]} (got {', '.join(given) or 'none'})"
