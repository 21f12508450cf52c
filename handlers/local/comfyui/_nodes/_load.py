"""Nodes that read a file from the input folder: LoadImage, LoadImageMask and LoadAudio."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, ImageSequence

from .._node import Folders, Node, NodeContext, NodeOutput
from ._types import Audio, Images, Masks
from ._wav import decode_wav

__all__ = ["LoadAudio", "LoadImage", "LoadImageMask", "annotated_path", "input_images", "input_media"]

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".apng", ".avif"})
_ANNOTATIONS = {" [input]": "input", " [output]": "output", " [temp]": "temp"}


def input_images(folders: Folders) -> list[str]:
    """LoadImage's combo: the image files directly in the input folder, sorted (ComfyUI lists no subfolders)."""
    if not folders.input.is_dir():
        return []
    return sorted(p.name for p in folders.input.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)


def annotated_path(name: str, folders: Folders) -> Path | None:
    """Resolve ``x.png``, ``sub/x.png`` or ``x.png [output]`` like ComfyUI; None if it escapes its folder."""
    root = folders.input
    for suffix, kind in _ANNOTATIONS.items():
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            root = getattr(folders, kind)
            break
    base = root.resolve()
    path = (base / name).resolve()
    return path if path.is_relative_to(base) and path != base else None


def _existing(name: str, folders: Folders) -> Path | None:
    path = annotated_path(name, folders)
    return path if path is not None and path.is_file() else None


def _open(name: str, folders: Folders) -> Image.Image:
    path = _existing(name, folders)
    if path is None:
        raise FileNotFoundError(f"No such file or directory: '{name}'")
    return Image.open(path)


def _mask_from_alpha(frame: Image.Image) -> Image.Image:
    """ComfyUI's mask is ``1 - alpha``: transparent pixels are the ones to paint."""
    return ImageOps.invert(frame.getchannel("A"))


def input_media(folders: Folders) -> list[str]:
    """LoadAudio's combo: files directly in the input folder whose MIME type is audio or video, sorted."""
    if not folders.input.is_dir():
        return []
    names = []
    for path in folders.input.iterdir():
        kind = mimetypes.guess_type(path.name)[0] or ""
        if path.is_file() and kind.split("/")[0] in ("audio", "video"):
            names.append(path.name)
    return sorted(names)


class _ReadsInputFile(Node):
    """A node reading the input-folder file named by its ``FILE_INPUT``: it runs again when the file's bytes change
    (ComfyUI's ``IS_CHANGED``), and a missing file fails validation (``VALIDATE_INPUTS``)."""

    FILE_INPUT = "image"
    VALIDATED_INPUTS = frozenset({FILE_INPUT})

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any], folders: Folders) -> Any:
        path = _existing(str(inputs.get(cls.FILE_INPUT, "")), folders)
        return None if path is None else hashlib.sha256(path.read_bytes()).hexdigest()

    @classmethod
    def validate_inputs(cls, inputs: dict[str, Any], folders: Folders) -> str | None:
        name = str(inputs.get(cls.FILE_INPUT, ""))
        return None if _existing(name, folders) is not None else f"Invalid {cls.FILE_INPUT} file: {name}"


class LoadImage(_ReadsInputFile):
    CLASS_TYPE = "LoadImage"
    DISPLAY_NAME = "Load Image"
    CATEGORY = "image"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE", "MASK")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"image": [input_images(folders), {"image_upload": True}]}}

    async def execute(self, ctx: NodeContext, *, image: str, **_: Any) -> NodeOutput:
        frames: list[Image.Image] = []
        masks: list[Image.Image] = []
        with _open(image, ctx.folders) as source:
            for raw in ImageSequence.Iterator(source):
                frame = ImageOps.exif_transpose(raw)
                # Frames of another size than the first are dropped, as ComfyUI does for odd animations.
                if frames and frame.size != frames[0].size:
                    continue
                if frame.mode == "I":
                    frame = frame.point(lambda v: v * (1 / 255))
                has_alpha = "A" in frame.getbands() or "transparency" in frame.info
                rgba = frame.convert("RGBA") if has_alpha else None
                frames.append(frame.convert("RGB"))
                # Without alpha, ComfyUI returns a 64x64 zero mask whatever the image size.
                masks.append(_mask_from_alpha(rgba) if rgba is not None else Image.new("L", (64, 64), 0))
        if len({m.size for m in masks}) > 1:
            masks = [m.resize(frames[0].size) for m in masks]
        return NodeOutput((Images(tuple(frames)), Masks(tuple(masks))))


class LoadImageMask(_ReadsInputFile):
    CLASS_TYPE = "LoadImageMask"
    DISPLAY_NAME = "Load Image (as Mask)"
    CATEGORY = "mask"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("MASK",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "image": [input_images(folders), {"image_upload": True}],
                "channel": [["alpha", "red", "green", "blue"]],
            }
        }

    async def execute(self, ctx: NodeContext, *, image: str, channel: str, **_: Any) -> NodeOutput:
        with _open(image, ctx.folders) as source:
            rgba = ImageOps.exif_transpose(source).convert("RGBA")
        band = rgba.getchannel(channel[0].upper())
        mask = ImageOps.invert(band) if channel == "alpha" else band
        return NodeOutput((Masks((mask,)),))


class LoadAudio(_ReadsInputFile):
    """Decodes WAV (PCM); the real node also reads FLAC, MP3 and video soundtracks through PyAV."""

    CLASS_TYPE = "LoadAudio"
    DISPLAY_NAME = "Load Audio"
    CATEGORY = "audio"
    PYTHON_MODULE = "comfy_extras.nodes_audio"
    RETURN_TYPES = ("AUDIO",)
    FILE_INPUT = "audio"
    VALIDATED_INPUTS = frozenset({FILE_INPUT})

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"audio": [input_media(folders), {"audio_upload": True}]}}

    async def execute(self, ctx: NodeContext, *, audio: str, **_: Any) -> NodeOutput:
        path = _existing(audio, ctx.folders)
        if path is None:
            raise FileNotFoundError(f"No such file or directory: '{audio}'")
        data = await asyncio.to_thread(path.read_bytes)
        channels, rate = decode_wav(data)
        return NodeOutput((Audio(channels, rate),))
