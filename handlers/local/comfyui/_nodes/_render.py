"""Deterministic pictures standing in for diffusion output: the same seed always draws the same image.

A latent's ``content`` seed (see :class:`~._types.Latent`) picks two gradient colours, a gradient angle and a
handful of coloured ellipses; different seeds differ visibly (colours and shapes), equal seeds are pixel-identical.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageOps

from ._types import digest

__all__ = ["GRAY", "picture", "step_preview"]

GRAY = (128, 128, 128)
_PREVIEW_SIZE = 512


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def picture(content: int, width: int, height: int, index: int = 0) -> Image.Image:
    """The image a sampler "generated" for batch item ``index`` of a latent with this ``content``."""
    rng = random.Random(digest("picture", content, index))  # noqa: S311 - a picture, not a secret
    side = max(width, height) * 2
    # linear_gradient is 256x256; scaled and rotated it gives a smooth ramp at any angle.
    ramp = Image.linear_gradient("L").resize((side, side)).rotate(rng.uniform(0, 360))
    left, top = (side - width) // 2, (side - height) // 2
    ramp = ramp.crop((left, top, left + width, top + height))
    image = ImageOps.colorize(ramp, _colour(rng), _colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 6)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.05, 0.3) * width, rng.uniform(0.05, 0.3) * height
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=_colour(rng))
    return image


def step_preview(content: int, step: int, steps: int, width: int, height: int) -> bytes:
    """The JPEG a latent2rgb previewer sends for one step: noise fading into the picture.

    Like ComfyUI, the preview is drawn at latent size (1/8) and then scaled (bilinear) to fit 512x512 (the
    server's ``--preview-size``) and saved at JPEG quality 95: a 64x64 job sends 512x512 previews of ~40 KB.
    """
    size = (max(1, width // 8), max(1, height // 8))
    final = picture(content, *size)
    rng = random.Random(digest("noise", content, step))  # noqa: S311
    noise = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    frame = ImageOps.contain(
        Image.blend(noise, final, step / steps), (_PREVIEW_SIZE, _PREVIEW_SIZE), Image.Resampling.BILINEAR
    )
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=95)
    return out.getvalue()
