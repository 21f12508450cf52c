"""Input media, the pure half: the error tree, safe names, base64 and data URIs, and magic-byte sniffing.

Nothing here touches the network or the disk; ``_staging`` does the I/O with these pieces.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from handlers.contract import ErrorCode, JobError, Problem

__all__ = [
    "BadBase64",
    "DecodedMedia",
    "DisallowedUrl",
    "InvalidMedia",
    "MediaError",
    "MediaFetchFailed",
    "MediaTooLarge",
    "Sniffed",
    "UnsafeName",
    "UnsupportedMedia",
    "decode_base64",
    "mime_for_extension",
    "sanitize_name",
    "sniff",
    "validate_name",
    "with_extension",
]


class MediaError(Exception):
    """Staging one input media item failed.

    ::

        MediaError                  .code, .retryable, .source, .details()
        ├── InvalidMedia            invalid_input: the job itself is wrong; a retry never helps
        │   ├── UnsafeName          a name that could climb out of the job folder or fool a reader
        │   ├── DisallowedUrl       scheme, user info or address refused by the SSRF guard
        │   ├── BadBase64           not base64, or a data URI that is not base64
        │   ├── MediaTooLarge       over the size cap (declared or counted)
        │   └── UnsupportedMedia    the bytes are not a media type we accept
        └── MediaFetchFailed        media_fetch_failed: network, HTTP or S3 error; ``retryable`` says if
                                    trying again later may help (timeouts, 5xx, 429) or not (404, 403)
    """

    code: ClassVar[ErrorCode] = ErrorCode.MEDIA_FETCH_FAILED

    def __init__(self, message: str, *, source: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        #: Where the item came from, with secrets (query strings, user info) already removed.
        self.source = source
        self.retryable = retryable
        #: The job's name for the media item, when known (so the handler can point at ``input.media[i]``).
        self.media_name: str | None = None

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code.value, "message": self.message, "retryable": self.retryable}
        if self.source is not None:
            out["source"] = self.source
        if self.media_name is not None:
            out["media"] = self.media_name
        return out

    def to_job_error(self, job_id: str | None = None) -> JobError:
        """The contract's error for this failure (the worker adds a problem at ``input.media[i]`` when it knows
        which item failed: see :meth:`problem_at`)."""
        return JobError(code=self.code, message=self.message, retryable=self.retryable, job_id=job_id)

    def problem_at(self, path: str) -> Problem:
        return Problem(path=path, message=self.message)


class InvalidMedia(MediaError):
    code: ClassVar[ErrorCode] = ErrorCode.INVALID_INPUT

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message, source=source, retryable=False)


class UnsafeName(InvalidMedia):
    pass


class DisallowedUrl(InvalidMedia):
    pass


class BadBase64(InvalidMedia):
    pass


class MediaTooLarge(InvalidMedia):
    pass


class UnsupportedMedia(InvalidMedia):
    pass


class MediaFetchFailed(MediaError):
    code: ClassVar[ErrorCode] = ErrorCode.MEDIA_FETCH_FAILED


# ---------------------------------------------------------------------------------------------------------------
# Names

#: The contract's media-name token: ASCII only, no separators, cannot start with a dot.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MAX_NAME: Final = 128
_UNSAFE_CHARS: Final = re.compile(r"[^A-Za-z0-9_.-]+")


def validate_name(name: str) -> str:
    """Accept a caller-chosen file name only if it is already safe; say exactly why when it is not.

    A name the caller chose is refused rather than silently changed, so a parameter that names it cannot end up
    pointing at a different file than the one the caller meant.
    """
    if not name:
        raise UnsafeName("media name is empty")
    if "\x00" in name:
        raise UnsafeName(f"media name {name!r} contains a NUL byte")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise UnsafeName(f"media name {name!r} contains control or format characters")
    if "/" in name or "\\" in name:
        raise UnsafeName(f"media name {name!r} contains a path separator")
    if name in {".", ".."}:
        raise UnsafeName(f"media name {name!r} is a directory reference")
    if not name.isascii():
        # NFKC shows the look-alike: a fullwidth solidus or a one-dot leader pretends to be harmless.
        folded = unicodedata.normalize("NFKC", name)
        hint = f" (it reads as {folded!r})" if folded != name else ""
        raise UnsafeName(f"media name {name!r} must be ASCII{hint}")
    if name.startswith("."):
        raise UnsafeName(f"media name {name!r} must not start with a dot")
    if len(name) > _MAX_NAME:
        raise UnsafeName(f"media name is {len(name)} characters long; the limit is {_MAX_NAME}")
    if _NAME_RE.fullmatch(name) is None:
        raise UnsafeName(f"media name {name!r} may only use letters, digits, '_', '-' and '.'")
    return name


def sanitize_name(raw: str, fallback: str = "input") -> str:
    """Turn a name nobody chose on purpose (the last segment of a URL or S3 key) into a safe one."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE_CHARS.sub("_", base).strip("._-")
    base = re.sub(r"\.{2,}", ".", base)
    if not base:
        base = fallback
    if len(base) > _MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            base = stem[: _MAX_NAME - len(ext) - 1].rstrip("._-") + "." + ext
        else:
            base = base[:_MAX_NAME]
    return validate_name(base)


def with_extension(name: str, ext: str) -> str:
    """Give an extension-less name the sniffed one, so loaders that go by extension (video, audio) work."""
    stem, dot, current = name.rpartition(".")
    if dot and stem and current:
        return name
    candidate = f"{name}.{ext}"
    if len(candidate) > _MAX_NAME:
        candidate = f"{name[: _MAX_NAME - len(ext) - 1]}.{ext}"
    return candidate


# ---------------------------------------------------------------------------------------------------------------
# base64 and data URIs


@dataclass(frozen=True, slots=True)
class DecodedMedia:
    data: bytes
    #: The MIME type a data URI declared; advisory only, the bytes are sniffed anyway.
    declared_mime: str | None


_DATA_URI: Final = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*),", re.ASCII | re.IGNORECASE)
_WHITESPACE: Final = re.compile(r"\s+")


def decode_base64(text: str, max_bytes: int) -> DecodedMedia:
    """Decode plain base64 or a ``data:<mime>;base64,`` URI, refusing anything over ``max_bytes`` before decoding."""
    declared: str | None = None
    payload = text
    if text[:5].lower() == "data:":
        match = _DATA_URI.match(text)
        if match is None:
            raise BadBase64("malformed data URI (expected data:<mime>;base64,<payload>)")
        params = [p.strip().lower() for p in match.group("params").split(";") if p.strip()]
        if "base64" not in params:
            raise BadBase64("data URI is not base64-encoded (';base64' missing)")
        declared = match.group("mime")
        payload = text[match.end() :]
    # The common case, one clean padded string, is decoded at once: stripping whitespace from a megabyte string
    # first would cost several times the decode itself. Anything else takes the careful path below.
    if payload and len(payload) % 4 == 0 and len(payload) // 4 * 3 <= max_bytes + 2:
        with contextlib.suppress(binascii.Error, ValueError):
            data = base64.b64decode(payload, validate=True)
            if len(data) > max_bytes:
                raise MediaTooLarge(f"base64 media decodes to {len(data)} bytes; the limit is {max_bytes}")
            return DecodedMedia(data=data, declared_mime=declared)
    payload = _WHITESPACE.sub("", payload)
    if not payload:
        raise BadBase64("base64 payload is empty")
    # Checked on the encoded length so an oversized item costs no decoding and no memory.
    estimate = len(payload) * 3 // 4 - payload[-2:].count("=")
    if estimate > max_bytes:
        raise MediaTooLarge(f"base64 media decodes to about {estimate} bytes; the limit is {max_bytes}")
    if len(payload) % 4 == 1:
        raise BadBase64("base64 payload has an impossible length")
    payload += "=" * (-len(payload) % 4)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadBase64(f"invalid base64: {exc}") from exc
    if len(data) > max_bytes:
        raise MediaTooLarge(f"base64 media decodes to {len(data)} bytes; the limit is {max_bytes}")
    return DecodedMedia(data=data, declared_mime=declared)


# ---------------------------------------------------------------------------------------------------------------
# Sniffing


@dataclass(frozen=True, slots=True)
class Sniffed:
    mime: str
    ext: str
    #: image | audio | video | archive
    category: str


#: How many leading bytes :func:`sniff` needs to see.
SNIFF_BYTES: Final = 64


def _is_mp3_frame(head: bytes) -> bool:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0x3
    layer = (head[1] >> 1) & 0x3
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0x3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def sniff(head: bytes) -> Sniffed | None:
    """The media type of a file from its first :data:`SNIFF_BYTES` bytes, or ``None`` when unrecognised."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image/png", "png", "image")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image/jpeg", "jpg", "image")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image/gif", "gif", "image")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image/webp", "webp", "image")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio/wav", "wav", "audio")
    if head.startswith(b"fLaC"):
        return Sniffed("audio/flac", "flac", "audio")
    if head.startswith(b"OggS"):
        return Sniffed("audio/ogg", "ogg", "audio")
    if head.startswith(b"ID3") or _is_mp3_frame(head):
        return Sniffed("audio/mpeg", "mp3", "audio")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return Sniffed("video/quicktime", "mov", "video")
        if brand in (b"M4A ", b"M4B "):
            return Sniffed("audio/mp4", "m4a", "audio")
        return Sniffed("video/mp4", "mp4", "video")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        if b"webm" in head[:SNIFF_BYTES]:
            return Sniffed("video/webm", "webm", "video")
        return Sniffed("video/x-matroska", "mkv", "video")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Sniffed("application/zip", "zip", "archive")
    return None


_MIME_BY_EXT: Final[dict[str, str]] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "avif": "image/avif",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "glb": "model/gltf-binary",
    "gltf": "model/gltf+json",
    "obj": "model/obj",
    "stl": "model/stl",
    "ply": "application/octet-stream",
    "fbx": "application/octet-stream",
    "latent": "application/octet-stream",
    "safetensors": "application/octet-stream",
    "json": "application/json",
    "txt": "text/plain",
    "zip": "application/zip",
}


def mime_for_extension(name: str) -> str | None:
    _, dot, ext = name.rpartition(".")
    return _MIME_BY_EXT.get(ext.lower()) if dot else None
