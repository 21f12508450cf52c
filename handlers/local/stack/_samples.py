"""Sample inputs for the library's templates: what a test or ``comfy-relay demo --all`` sends where a template
needs media or a value it has no default for.

Media go in the job as base64 items (portrait photos, an inpainting mask, a voice sample); a LoRA training dataset
(images with same-named caption files) is placed in ComfyUI's input folder, where the loaders read it. The
characters' own media come from their packs (``_pack_assets``).
Everything is generated, deterministic and small: no file is downloaded or committed.
"""

from __future__ import annotations

import array
import base64
import io
import math
import sys
import wave
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from handlers.workflow import (
    ParamType,
    Template,
)

__all__ = [
    "SAMPLE_DATASET",
    "SAMPLE_SIZE",
    "VOICE_TRANSCRIPT",
    "place_sample_inputs",
    "sample_job",
    "sample_portrait",
    "sample_pose",
    "sample_voice",
]

#: The input subfolder :func:`place_sample_inputs` fills with a captioned training dataset.
SAMPLE_DATASET = "relay-samples/dataset"
#: Side of the sample photos and masks, in pixels.
SAMPLE_SIZE = 512
VOICE_TRANSCRIPT = "Hello there, this is a sample of my voice for the local stack."
_TRIGGER = "ohwx_character"
_DATASET_SHOTS = ("close-up portrait", "upper body, smiling", "full body, standing", "close-up portrait, profile")
_TEXT = {
    "dataset": SAMPLE_DATASET,
    "trigger_word": _TRIGGER,
    "voice_transcript": VOICE_TRANSCRIPT,
    "text": "Good morning! Here is the news for today. It will be sunny, with a light breeze in the afternoon.",
    "appearance": "a young woman with short red hair and a green jacket",
}
_NUMBERS = {"width": SAMPLE_SIZE, "height": SAMPLE_SIZE, "color": 0x3366CC}
_PROMPT = "a portrait photo of a smiling woman in a garden, soft light"


def sample_portrait(variant: int = 0, size: int = SAMPLE_SIZE) -> bytes:
    """A PNG "portrait": a face-like figure on a gradient; ``variant`` changes the colours and the pose."""
    hue = (variant * 67) % 256
    image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    image = Image.blend(image, Image.new("RGB", (size, size), (hue, 160, 255 - hue)), 0.6)
    draw = ImageDraw.Draw(image)
    shift = (variant % 3 - 1) * size // 12
    cx, cy, r = size // 2 + shift, size * 9 // 20, size // 5
    draw.ellipse((cx - r * 2, cy + r, cx + r * 2, size + r), fill=(60 + hue // 4, 90, 140))  # shoulders
    draw.ellipse((cx - r, cy - r * 5 // 4, cx + r, cy + r * 5 // 4), fill=(235, 195, 165))  # face
    draw.chord((cx - r * 11 // 10, cy - r * 3 // 2, cx + r * 11 // 10, cy), 180, 360, fill=(90 + hue // 3, 50, 30))
    for ex in (cx - r // 2, cx + r // 2):
        draw.ellipse((ex - r // 8, cy - r // 8, ex + r // 8, cy + r // 8), fill=(40, 40, 60))
    draw.arc(
        (cx - r // 2, cy + r // 4, cx + r // 2, cy + r * 3 // 4), 20, 160, fill=(150, 50, 60), width=max(1, r // 12)
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


#: An OpenPose skeleton standing with its arms out (keypoint pairs as fractions of the side, OpenPose limb colours).
_POSE_LIMBS = (
    ((0.50, 0.18), (0.50, 0.10), (255, 0, 85)),
    ((0.50, 0.18), (0.38, 0.19), (255, 0, 0)),
    ((0.38, 0.19), (0.28, 0.30), (255, 85, 0)),
    ((0.28, 0.30), (0.20, 0.40), (255, 170, 0)),
    ((0.50, 0.18), (0.62, 0.19), (255, 255, 0)),
    ((0.62, 0.19), (0.72, 0.30), (170, 255, 0)),
    ((0.72, 0.30), (0.80, 0.40), (85, 255, 0)),
    ((0.50, 0.18), (0.44, 0.50), (0, 255, 0)),
    ((0.44, 0.50), (0.43, 0.70), (0, 255, 85)),
    ((0.43, 0.70), (0.42, 0.92), (0, 255, 170)),
    ((0.50, 0.18), (0.56, 0.50), (0, 255, 255)),
    ((0.56, 0.50), (0.57, 0.70), (0, 170, 255)),
    ((0.57, 0.70), (0.58, 0.92), (0, 85, 255)),
)


def sample_pose(size: int = SAMPLE_SIZE) -> bytes:
    """A PNG OpenPose skeleton (coloured limbs on black), what a pose ControlNet takes as its hint."""
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for (ax, ay), (bx, by), colour in _POSE_LIMBS:
        draw.line((ax * size, ay * size, bx * size, by * size), fill=colour, width=max(2, size // 64))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _sample_mask(size: int = SAMPLE_SIZE) -> bytes:
    """White (repaint) over the lower middle of a sample portrait, black elsewhere."""
    mask = Image.new("RGB", (size, size))
    ImageDraw.Draw(mask).ellipse((size // 4, size // 2, size * 3 // 4, size * 15 // 16), fill=(255, 255, 255))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()


def sample_voice(seconds: float = 3.0, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV: syllable-like tone bursts, the stand-in for 5-15 s of someone speaking."""
    total = round(seconds * rate)
    samples = array.array("h", bytes(2 * total))
    syllable = rate // 5
    for n in range(total):
        within = n % syllable
        if within < syllable * 3 // 4:
            pitch = 140 + 30 * ((n // syllable) % 4)
            envelope = math.sin(math.pi * within / (syllable * 3 // 4))
            samples[n] = int(8000 * envelope * math.sin(2 * math.pi * pitch * n / rate))
    if sys.byteorder == "big":
        samples.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


def place_sample_inputs(input_dir: Path, root: Path | None = None) -> list[Path]:
    """Write the sample training dataset into ``input_dir/SAMPLE_DATASET``. Existing files are kept; returns the
    files created. (The characters' reference photos and voice samples are not placed: the worker provisions them
    from each character's pack, see ``_pack_assets``; ``root`` is accepted for callers of the earlier version.)"""
    created = []
    folder = input_dir / SAMPLE_DATASET
    folder.mkdir(parents=True, exist_ok=True)
    for index, shot in enumerate(_DATASET_SHOTS):
        image, caption = folder / f"{index + 1:02}.png", folder / f"{index + 1:02}.txt"
        if not image.exists():
            image.write_bytes(sample_portrait(index, size=256))
            created.append(image)
        if not caption.exists():
            caption.write_text(f"{_TRIGGER}, {shot}", encoding="utf-8")
            created.append(caption)
    return created


def _media(name: str, data: bytes, mime: str) -> dict[str, Any]:
    return {"name": name, "base64": base64.b64encode(data).decode("ascii"), "mime": mime}


def sample_job(template: Template) -> dict[str, Any]:
    """A job ``input`` running ``template`` with its defaults: a value for each parameter it requires (media as
    base64 items), nothing else. A training template also needs :func:`place_sample_inputs` on its ComfyUI."""
    params: dict[str, Any] = {}
    media: list[dict[str, Any]] = []
    images = 0
    for name, spec in template.params().items():
        if not spec.required:
            continue
        if spec.type is ParamType.IMAGE and name.startswith("pose_image"):
            media.append(_media(name, sample_pose(), "image/png"))
        elif spec.type is ParamType.IMAGE:
            media.append(_media(name, sample_portrait(images), "image/png"))
            images += 1
        elif spec.type is ParamType.VIDEO:
            raise ValueError(f"{template.name}: no sample video for the required parameter {name!r}")
        elif spec.type is ParamType.MASK:
            media.append(_media(name, _sample_mask(), "image/png"))
        elif spec.type is ParamType.AUDIO:
            media.append(_media(name, sample_voice(), "audio/wav"))
        else:
            params[name] = _TEXT.get(name, _NUMBERS.get(name, _PROMPT))
            continue
        params[name] = name
    job: dict[str, Any] = {"template": template.name, "params": params}
    if template.character is not None:
        job["character"] = template.character
    if media:
        job["media"] = media
    return job
