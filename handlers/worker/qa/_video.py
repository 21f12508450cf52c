"""Video checks: frame count, fps and duration against what was asked, frozen frames, and the image checks on the
first and last frames. Frames are decoded with PyAV (the library ComfyUI itself uses for video); without it the
checks say ``skipped``, never pass or fail."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image, ImageSequence

from handlers.contract import OutputQa, QaCheck, QaThresholds, QaVerdict
from handlers.worker.qa._expect import Expected
from handlers.worker.qa._image import check_image
from handlers.worker.qa._verdicts import overall, skipped

__all__ = ["VideoFrames", "check_video", "check_video_file", "decoder_available", "read_animated", "read_video"]

_MOTION_SIDE: Final = 64


def _av() -> Any | None:
    try:
        return importlib.import_module("av")
    except ImportError:
        return None


def decoder_available() -> bool:
    return _av() is not None


@dataclass(slots=True)
class VideoFrames:
    """What one decoding pass keeps: counts, the first and last frames, and each frame's mean change."""

    frames: int = 0
    fps: float | None = None
    duration_s: float | None = None
    first: Image.Image | None = None
    last: Image.Image | None = None
    changes: list[float] = field(default_factory=list)
    sampled: list[Image.Image] = field(default_factory=list)


def _frames(path: Path) -> Iterator[tuple[Image.Image, float | None, float | None]]:
    av = _av()
    assert av is not None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else None
        for frame in container.decode(stream):
            yield frame.to_image(), rate, float(frame.time) if frame.time is not None else None


def read_video(path: Path, *, sample_every_s: float | None = None, sample_for_s: float = 0.0) -> VideoFrames:
    """Decode every frame once. ``sample_every_s``: also keep frames that far apart for the first
    ``sample_for_s`` seconds (the animated preview). Blocking: run in a thread."""
    out = VideoFrames()
    previous: np.ndarray[Any, np.dtype[np.float32]] | None = None
    next_sample = 0.0
    last_time: float | None = None
    for image, rate, time in _frames(path):
        out.fps = rate
        out.frames += 1
        if out.first is None:
            out.first = image
        out.last = image
        small = image.convert("L")
        small.thumbnail((_MOTION_SIDE, _MOTION_SIDE))
        current = np.asarray(small, dtype=np.float32)
        if previous is not None and previous.shape == current.shape:
            out.changes.append(float(np.abs(current - previous).mean()))
        previous = current
        at = time if time is not None else (out.frames - 1) / (rate or 1.0)
        last_time = at
        if sample_every_s is not None and at <= sample_for_s and at + 1e-6 >= next_sample:
            out.sampled.append(image)
            next_sample += sample_every_s
    if out.fps and out.frames:
        out.duration_s = out.frames / out.fps
    elif last_time is not None:
        out.duration_s = last_time
    return out


def read_animated(path: Path) -> VideoFrames:
    """The frames of an animated WebP/PNG/GIF, read with Pillow, as :func:`read_video` reads a video. Blocking."""
    out = VideoFrames()
    previous: np.ndarray[Any, np.dtype[np.float32]] | None = None
    total_ms = 0
    with Image.open(path) as img:
        for frame in ImageSequence.Iterator(img):
            image = frame.convert("RGB")
            total_ms += int(frame.info.get("duration") or 0)
            out.frames += 1
            if out.first is None:
                out.first = image
            out.last = image
            small = image.convert("L")
            small.thumbnail((_MOTION_SIDE, _MOTION_SIDE))
            current = np.asarray(small, dtype=np.float32)
            if previous is not None and previous.shape == current.shape:
                out.changes.append(float(np.abs(current - previous).mean()))
            previous = current
    if total_ms > 0:
        out.duration_s = total_ms / 1000
        out.fps = out.frames / out.duration_s
    return out


def _relative(got: float, asked: float) -> float:
    return abs(got - asked) / asked if asked else 0.0


def check_video(video: VideoFrames, expected: Expected | None, th: QaThresholds) -> OutputQa:
    if video.frames == 0 or video.first is None or video.last is None:
        return overall([QaCheck(name="decodes", verdict=QaVerdict.FAIL, message="no video frames")])
    checks = [QaCheck(name="decodes", verdict=QaVerdict.PASS, score=video.frames)]
    exp = expected or Expected()
    if exp.width is not None and exp.height is not None:
        off = max(abs(video.first.width - exp.width), abs(video.first.height - exp.height))
        checks.append(
            QaCheck(
                name="size",
                verdict=QaVerdict.PASS if off <= th.size_tolerance_px else QaVerdict.FAIL,
                score=off,
                limit=th.size_tolerance_px,
                message=f"{video.first.width}x{video.first.height}, asked {exp.width}x{exp.height}",
            )
        )
    else:
        checks.append(skipped("size", "the graph does not say what size it makes"))
    measured: list[tuple[str, float | None, float | None]] = [
        ("frames", float(video.frames), float(exp.frames) if exp.frames else None),
        ("fps", video.fps, exp.fps),
        ("duration", video.duration_s, exp.duration_s),
    ]
    for name, got, asked in measured:
        if got is None or asked is None:
            checks.append(skipped(name, "not known for this graph"))
            continue
        diff = _relative(got, asked)
        checks.append(
            QaCheck(
                name=name,
                verdict=QaVerdict.PASS if diff <= th.duration_tolerance else QaVerdict.FAIL,
                score=round(got, 3),
                limit=asked,
                message=None if diff <= th.duration_tolerance else f"{got:g}, asked {asked:g}",
            )
        )
    if video.changes:
        motion = float(np.mean(video.changes))
        frozen = motion < th.min_motion
        checks.append(
            QaCheck(
                name="frozen",
                verdict=QaVerdict.FAIL if frozen else QaVerdict.PASS,
                score=round(motion, 3),
                limit=th.min_motion,
                message="the frames do not change" if frozen else None,
            )
        )
    else:
        checks.append(skipped("frozen", "a single frame"))
    for which, frame in (("first", video.first), ("last", video.last)):
        frame_checks, _ = check_image(frame, None, th, sizes=False)
        for check in frame_checks:
            if check.name != "decodes":
                checks.append(check.model_copy(update={"name": f"{which}_frame.{check.name}"}))
    return overall(checks)


def check_video_file(path: Path, expected: Expected | None, th: QaThresholds) -> OutputQa:
    """Blocking: run in a thread."""
    if not decoder_available():
        return overall([skipped("decodes", "no video decoder in this worker (install PyAV: pip install av)")])
    try:
        video = read_video(path)
    except Exception as exc:  # PyAV raises its own tree (av.error.*) for every broken container or stream
        return overall([QaCheck(name="decodes", verdict=QaVerdict.FAIL, message=f"cannot decode: {exc}")])
    return check_video(video, expected, th)
