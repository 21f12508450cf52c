"""``/view`` and ``/upload``: ComfyUI's file rules (annotated names, traversal refusals, duplicate naming)."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

from ._node import Folders

__all__ = ["Refused", "View", "annotated_name", "directory_for", "pick_upload_path", "render_view", "within"]

_DOWNLOAD_ONLY = {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css"}


class Refused(Exception):
    """A request the real server answers with a bare status code."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class View:
    """What ``/view`` sends: a file path to stream, or rendered bytes."""

    content_type: str
    filename: str
    path: Path | None = None
    body: bytes = b""


def directory_for(folders: Folders, kind: str | None) -> Path | None:
    return {"input": folders.input, "output": folders.output, "temp": folders.temp}.get(kind or "")


def annotated_name(name: str, folders: Folders) -> tuple[str, Path | None]:
    """``"x.png [input]"`` -> ("x.png", input dir); a plain name -> (name, None)."""
    for kind in ("output", "input", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], directory_for(folders, kind)
    return name, None


def within(base: Path, candidate: str | Path) -> bool:
    base_abs = os.path.abspath(base)
    return os.path.commonpath((base_abs, os.path.abspath(candidate))) == base_abs


def render_view(folders: Folders, query: dict[str, str]) -> View:
    """Resolve a ``/view`` query; raises :class:`Refused` with the real server's status codes."""
    if "filename" not in query:
        raise Refused(404)
    filename, directory = annotated_name(query["filename"], folders)
    if not filename:
        raise Refused(400)
    if filename[0] == "/" or ".." in filename:
        raise Refused(400)
    if directory is None:
        directory = directory_for(folders, query.get("type", "output"))
    if directory is None:
        raise Refused(400)
    if "subfolder" in query:
        full = directory / query["subfolder"]
        if not within(directory, full):
            raise Refused(403)
        directory = full
    filename = os.path.basename(filename)
    path = directory / filename
    if not path.is_file():
        raise Refused(404)
    channel = query.get("channel")
    if "preview" in query:
        return _preview(path, filename, query["preview"], channel or "")
    if channel == "rgb":
        with Image.open(path) as img:
            rgb = Image.merge("RGB", img.split()[:3]) if img.mode == "RGBA" else img.convert("RGB")
            return View("image/png", filename, body=_png(rgb))
    if channel == "a":
        with Image.open(path) as img:
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size)
            out.putalpha(alpha)
            return View("image/png", filename, body=_png(out))
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if content_type in _DOWNLOAD_ONLY:
        content_type = "application/octet-stream"
    return View(content_type, filename, path=path)


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _preview(path: Path, filename: str, spec: str, channel: str) -> View:
    parts = spec.split(";")
    image_format = parts[0]
    if image_format not in ("webp", "jpeg") or "a" in channel:
        image_format = "webp"
    quality = int(parts[-1]) if parts[-1].isdigit() else 90
    with Image.open(path) as img:
        out: Image.Image = img
        if image_format == "jpeg" or channel == "rgb":
            out = img.convert("RGB")
        buffer = io.BytesIO()
        out.save(buffer, format=image_format, quality=quality)
    return View(f"image/{image_format}", filename, body=buffer.getvalue())


def _same_bytes(path: Path, data: bytes) -> bool:
    return hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()


def pick_upload_path(directory: Path, subfolder: str, filename: str, data: bytes, overwrite: bool) -> tuple[Path, bool]:
    """Where an upload goes and whether it is a duplicate (same name and bytes: nothing to write).

    Traversal out of ``directory`` raises ``Refused(400)``. Without ``overwrite``, a taken name becomes
    ``name (1).ext``, ``name (2).ext``... unless one of them already holds the same bytes.
    """
    folder = Path(os.path.join(directory, os.path.normpath(subfolder)))
    path = Path(os.path.abspath(folder / filename))
    if not within(directory, path):
        raise Refused(400)
    if overwrite:
        return path, False
    stem, ext = os.path.splitext(filename)
    index = 1
    while path.exists():
        if path.is_file() and _same_bytes(path, data):
            return path, True
        path = folder / f"{stem} ({index}){ext}"
        index += 1
    return path, False


def apply_mask(original: Path, mask_bytes: bytes, target: Path) -> None:
    """``/upload/mask``: the original image with the uploaded mask's alpha, keeping its PNG text chunks."""
    with Image.open(original) as img, Image.open(io.BytesIO(mask_bytes)) as mask:
        info = PngImagePlugin.PngInfo()
        for key, value in getattr(img, "text", {}).items():
            info.add_text(key, value)
        out = img.convert("RGBA")
        out.putalpha(mask.convert("RGBA").getchannel("A"))
        out.save(target, compress_level=4, pnginfo=info)
