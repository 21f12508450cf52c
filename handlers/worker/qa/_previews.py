"""Derived outputs a UI shows at once: a WebP thumbnail of an image, a poster frame and a short low-resolution
animated WebP of a video, a waveform of audio. Pure file-in, files-out functions (Pillow, numpy); blocking."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image, ImageDraw

from handlers.contract import OutputKind, OutputRole, PreviewOptions
from handlers.worker.qa._audio import read_audio
from handlers.worker.qa._video import decoder_available, read_video

__all__ = ["Derived", "make_previews", "thumbnail", "waveform"]

_WAVE_SIZE: Final = (512, 128)
_WAVE_BG: Final = (24, 24, 28)
_WAVE_FG: Final = (96, 180, 255)


@dataclass(frozen=True, slots=True)
class Derived:
    role: OutputRole
    path: Path


def thumbnail(image: Image.Image, long_side: int) -> Image.Image:
    small = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    small.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    return small


def waveform(samples: np.ndarray[Any, Any], size: tuple[int, int] = _WAVE_SIZE) -> Image.Image:
    """Min/max per column, drawn as vertical bars: the shape a player shows."""
    width, height = size
    image = Image.new("RGB", size, _WAVE_BG)
    if samples.size == 0:
        return image
    draw = ImageDraw.Draw(image)
    columns = np.array_split(samples, width)
    middle = height / 2
    for x, column in enumerate(columns):
        if column.size == 0:
            continue
        top, bottom = float(column.max()), float(column.min())
        draw.line([(x, middle - top * middle), (x, middle - bottom * middle)], fill=_WAVE_FG)
    return image


def _name(source: Path, role: OutputRole) -> str:
    return f"{source.stem}.{role.value}.webp"


def make_previews(source: Path, kind: OutputKind, options: PreviewOptions, work_dir: Path) -> list[Derived]:
    """The derived files of one output, written into ``work_dir``; nothing for kinds without a preview."""
    made: list[Derived] = []

    def save(image: Image.Image, role: OutputRole) -> None:
        target = work_dir / _name(source, role)
        image.save(target, format="WEBP", quality=options.quality)
        made.append(Derived(role, target))

    if kind in (OutputKind.IMAGE, OutputKind.ANIMATED):
        with Image.open(source) as img:
            img.load()
            save(thumbnail(img, options.long_side), OutputRole.THUMBNAIL)
    elif kind is OutputKind.VIDEO and decoder_available():
        video = read_video(source, sample_every_s=1 / options.video_fps, sample_for_s=options.video_seconds)
        if video.first is not None:
            save(thumbnail(video.first, options.long_side), OutputRole.POSTER)
        if len(video.sampled) > 1:
            frames = [thumbnail(f, options.long_side // 2 or 1) for f in video.sampled]
            target = work_dir / _name(source, OutputRole.PREVIEW)
            frames[0].save(
                target,
                format="WEBP",
                save_all=True,
                append_images=frames[1:],
                duration=round(1000 / options.video_fps),
                loop=0,
                quality=options.quality,
            )
            made.append(Derived(OutputRole.PREVIEW, target))
    elif kind is OutputKind.AUDIO:
        samples, _rate = read_audio(source)
        save(waveform(samples), OutputRole.WAVEFORM)
    return made
