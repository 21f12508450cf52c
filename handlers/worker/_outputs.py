"""Outputs, the pure half: what files and texts one node's ui dict names, where they live, and what they are.

ComfyUI reports outputs per node as a "ui" dict, both in the ``executed`` message and in ``/history``:
``images`` (with ``animated`` flags for animated WEBP/PNG and core video), ``audio``, ``text``, ``latents``,
``3d``, VideoHelperSuite's ``gifs``, and whatever custom nodes invent. :func:`collect_node_outputs` turns that into
typed references; :func:`describe_file` reads a file once, in chunks, for its size, sha256, MIME type and the
dimensions or duration that are cheap to get.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final

from PIL import Image

from handlers.contract import MAX_INLINE_BASE64_BYTES, OutputKind
from handlers.worker._media import SNIFF_BYTES, mime_for_extension, sniff

__all__ = [
    "ComfyDirs",
    "FileMeta",
    "FileRef",
    "InlineBudget",
    "NodeOutputs",
    "OutputPathError",
    "TextOutput",
    "collect_node_outputs",
    "describe_file",
    "resolve_ref",
]

_VIDEO_EXT: Final = frozenset({"mp4", "m4v", "webm", "mov", "mkv", "avi"})
_ANIMATED_EXT: Final = frozenset({"gif", "webp", "png", "apng"})
_FIXED_KINDS: Final[dict[str, OutputKind]] = {
    "audio": OutputKind.AUDIO,
    "latents": OutputKind.LATENT,
    "3d": OutputKind.MODEL_3D,
    #: Not a ComfyUI key: the worker reports the trained models it finds under it (``_models``).
    "models": OutputKind.MODEL,
}
#: Keys that are flags or metadata about other keys, never files.
_NOT_FILES: Final = frozenset({"animated", "text"})
_CHUNK: Final = 1024 * 1024


class OutputPathError(ValueError):
    """A ui entry names a file outside ComfyUI's folders (a bug or a hostile custom node)."""


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file a node reported, as ComfyUI names it: ``<type dir>/<subfolder>/<filename>``."""

    node_id: str
    node_title: str | None
    kind: OutputKind
    filename: str
    subfolder: str
    type: str
    #: The ui key it came from (``images``, ``gifs``, ...), kept for diagnostics.
    key: str

    @property
    def temp(self) -> bool:
        return self.type == "temp"

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.node_id, self.type, self.subfolder, self.filename)


@dataclass(frozen=True, slots=True)
class TextOutput:
    node_id: str
    node_title: str | None
    text: str


@dataclass(frozen=True, slots=True)
class NodeOutputs:
    files: list[FileRef] = field(default_factory=list)
    texts: list[TextOutput] = field(default_factory=list)


def _ext(filename: str) -> str:
    return PurePosixPath(filename).suffix.lower().lstrip(".")


def _animated_flags(ui: Mapping[str, Any], count: int) -> list[bool]:
    flags = ui.get("animated")
    if not isinstance(flags, list | tuple):
        return [False] * count
    values = [bool(f) for f in flags]
    if len(values) == count:
        return values
    # SaveAnimated* send one flag for the whole list.
    return [any(values)] * count


def _image_kind(filename: str, animated: bool) -> OutputKind:
    ext = _ext(filename)
    if ext in _VIDEO_EXT:
        return OutputKind.VIDEO  # core SaveVideo reports its mp4 under "images" with animated: [true]
    if animated or ext == "gif":
        return OutputKind.ANIMATED
    return OutputKind.IMAGE


def _gif_kind(entry: Mapping[str, Any]) -> OutputKind:
    fmt = str(entry.get("format") or "")
    if fmt.startswith("video/") or _ext(str(entry["filename"])) in _VIDEO_EXT:
        return OutputKind.VIDEO
    return OutputKind.ANIMATED


def _file_entries(value: Any) -> list[Mapping[str, Any]]:
    entries = value if isinstance(value, list | tuple) else [value]
    return [e for e in entries if isinstance(e, Mapping) and isinstance(e.get("filename"), str) and e["filename"]]


def collect_node_outputs(
    ui: Mapping[str, Any], node_id: str, node_title: str | None = None, *, include_temp: bool = False
) -> NodeOutputs:
    """The files and texts in one node's ui dict (``executed.output`` or ``history.outputs[node]``).

    Temp files (PreviewImage, PreviewAudio, VHS previews) are dropped unless ``include_temp``; unknown keys whose
    entries look like files (``filename``, ``subfolder``, ``type``) become kind ``file``.
    """
    files: list[FileRef] = []
    texts: list[TextOutput] = []
    seen: set[tuple[str, str, str, str]] = set()

    def add(entry: Mapping[str, Any], kind: OutputKind, key: str) -> None:
        ref = FileRef(
            node_id=node_id,
            node_title=node_title,
            kind=kind,
            filename=str(entry["filename"]),
            subfolder=str(entry.get("subfolder") or ""),
            type=str(entry.get("type") or "output"),
            key=key,
        )
        if (ref.temp and not include_temp) or ref.identity in seen:
            return
        seen.add(ref.identity)
        files.append(ref)

    for key, value in ui.items():
        if key == "text":
            items = value if isinstance(value, list | tuple) else [value]
            texts.extend(TextOutput(node_id, node_title, v if isinstance(v, str) else str(v)) for v in items)
        elif key in _NOT_FILES:
            continue
        elif key == "images":
            raw = value if isinstance(value, list | tuple) else [value]
            flags = _animated_flags(ui, len(raw))
            for entry, animated in zip(raw, flags, strict=True):
                for e in _file_entries(entry):
                    add(e, _image_kind(str(e["filename"]), animated), key)
        elif key == "gifs":
            for e in _file_entries(value):
                add(e, _gif_kind(e), key)
        else:
            for e in _file_entries(value):
                add(e, _FIXED_KINDS.get(key, OutputKind.FILE), key)
    return NodeOutputs(files=files, texts=texts)


@dataclass(frozen=True, slots=True)
class ComfyDirs:
    output: Path
    temp: Path
    input: Path

    def for_type(self, kind: str) -> Path:
        try:
            return {"output": self.output, "temp": self.temp, "input": self.input}[kind]
        except KeyError:
            raise OutputPathError(f"unknown ComfyUI folder type {kind!r}") from None


def resolve_ref(ref: FileRef, dirs: ComfyDirs) -> Path:
    """The file's path on disk; refuses anything that would leave the folder ComfyUI's ``type`` names."""
    base = dirs.for_type(ref.type).resolve()
    if "/" in ref.filename or "\\" in ref.filename or ref.filename in {".", ".."} or "\x00" in ref.filename:
        raise OutputPathError(f"output file name {ref.filename!r} is not a plain name")
    sub = PurePosixPath(ref.subfolder.replace("\\", "/"))
    if sub.is_absolute() or ".." in sub.parts or "\x00" in ref.subfolder:
        raise OutputPathError(f"output subfolder {ref.subfolder!r} leaves the {ref.type} folder")
    path = (base / sub / ref.filename).resolve()
    if not path.is_relative_to(base):
        raise OutputPathError(f"output {ref.subfolder}/{ref.filename} resolves outside the {ref.type} folder")
    return path


# ---------------------------------------------------------------------------------------------------------------
# Metadata


@dataclass(frozen=True, slots=True)
class FileMeta:
    mime: str
    bytes: int
    sha256: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    frames: int | None = None


def _wav_duration(fh: IO[bytes]) -> float | None:
    fh.seek(12)
    byte_rate: int | None = None
    while True:
        header = fh.read(8)
        if len(header) < 8:
            return None
        chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
        if chunk_id == b"fmt ":
            fmt = fh.read(size)
            if len(fmt) < 16:
                return None
            byte_rate = struct.unpack("<I", fmt[8:12])[0]
            if size % 2:
                fh.seek(1, 1)
        elif chunk_id == b"data":
            return size / byte_rate if byte_rate else None
        else:
            fh.seek(size + (size % 2), 1)


def _flac_duration(fh: IO[bytes]) -> float | None:
    fh.seek(4)
    block = fh.read(4 + 34)
    if len(block) < 38 or block[0] & 0x7F != 0:  # STREAMINFO is always the first metadata block
        return None
    info = block[4:]
    sample_rate = int.from_bytes(info[10:13], "big") >> 4
    total_samples = int.from_bytes(info[13:18], "big") & 0xFFFFFFFFF
    if not sample_rate or not total_samples:
        return None
    return total_samples / sample_rate


def _boxes(fh: IO[bytes], start: int, end: int) -> Iterable[tuple[bytes, int, int]]:
    """(type, payload offset, payload end) of each ISO-BMFF box between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        offset = 8
        if size == 1:
            large = fh.read(8)
            if len(large) < 8:
                return
            size = struct.unpack(">Q", large)[0]
            offset = 16
        elif size == 0:
            size = end - pos
        if size < offset:
            return
        yield kind, pos + offset, min(pos + size, end)
        pos += size


def _mp4_meta(fh: IO[bytes], length: int) -> tuple[float | None, int | None, int | None]:
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    for kind, start, end in _boxes(fh, 0, length):
        if kind != b"moov":
            continue
        for sub, s_start, s_end in _boxes(fh, start, end):
            if sub == b"mvhd":
                fh.seek(s_start)
                version = fh.read(1)
                fh.seek(3, 1)
                if version == b"\x01":
                    fh.seek(16, 1)
                    timescale, dur = struct.unpack(">IQ", fh.read(12))
                else:
                    fh.seek(8, 1)
                    timescale, dur = struct.unpack(">II", fh.read(8))
                if timescale:
                    duration = dur / timescale
            elif sub == b"trak" and width is None:
                for box, t_start, t_end in _boxes(fh, s_start, s_end):
                    if box == b"tkhd" and t_end - t_start >= 84:
                        fh.seek(t_end - 8)
                        w, h = struct.unpack(">II", fh.read(8))
                        if w >> 16 and h >> 16:
                            width, height = w >> 16, h >> 16
        break
    return duration, width, height


def _image_meta(path: Path) -> tuple[int | None, int | None, int | None]:
    try:
        with Image.open(path) as img:
            width, height = img.size
            # Counting frames is cheap for PNG/WEBP (chunk headers); for GIF it walks every frame, so skip it.
            frames = getattr(img, "n_frames", 1) if img.format in {"PNG", "WEBP"} else None
            return width, height, frames
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None, None, None


def describe_file(path: Path, mime_hint: str | None = None) -> FileMeta:
    """Size, sha256 and MIME type from one chunked read, plus cheap dimensions/duration. Blocking: run in a thread.

    Memory stays at one chunk whatever the file size; dimensions come from headers (Pillow's lazy open, WAV/FLAC
    headers, the MP4 ``moov`` box), never from decoding the content.
    """
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if not head:
                head = chunk[:SNIFF_BYTES]
            digest.update(chunk)
            size += len(chunk)
        sniffed = sniff(head)
        mime = sniffed.mime if sniffed is not None else (mime_for_extension(path.name) or mime_hint)
        mime = mime or "application/octet-stream"
        width = height = frames = None
        duration: float | None = None
        try:
            if mime == "audio/wav":
                duration = _wav_duration(fh)
            elif mime == "audio/flac":
                duration = _flac_duration(fh)
            elif mime in {"video/mp4", "video/quicktime", "audio/mp4"}:
                duration, width, height = _mp4_meta(fh, size)
        except (OSError, struct.error, ValueError):
            duration = None
    if mime.startswith("image/"):
        width, height, frames = _image_meta(path)
    return FileMeta(
        mime=mime,
        bytes=size,
        sha256=digest.hexdigest(),
        width=width,
        height=height,
        duration_s=round(duration, 6) if duration is not None else None,
        frames=frames,
    )


class InlineBudget:
    """How many output bytes may still travel inline as base64: a per-item cap from the job, and a total that
    keeps the whole result under RunPod's 10 MB payload limit whatever the job asked for."""

    def __init__(self, per_item: int, total: int = MAX_INLINE_BASE64_BYTES) -> None:
        self.per_item = max(0, min(per_item, total, MAX_INLINE_BASE64_BYTES))
        self.remaining = max(0, min(total, MAX_INLINE_BASE64_BYTES))

    def take(self, size: int) -> bool:
        """Reserve ``size`` raw bytes if they fit; ``False`` means return this item by URL only."""
        if size > self.per_item or size > self.remaining:
            return False
        self.remaining -= size
        return True
