"""Which checks an output gets, by kind: one blocking entry point per file."""

from __future__ import annotations

from pathlib import Path

from handlers.contract import OutputKind, OutputQa, QaThresholds
from handlers.worker.qa._audio import check_audio_file
from handlers.worker.qa._expect import Expected
from handlers.worker.qa._image import check_image_file
from handlers.worker.qa._video import check_video, check_video_file, read_animated

__all__ = ["check_file"]


def check_file(path: Path, kind: OutputKind, expected: Expected | None, th: QaThresholds) -> OutputQa | None:
    """The QA of one output file; ``None`` for kinds that have no checks (latents, 3D, other files).
    Blocking: run in a thread."""
    if kind is OutputKind.ANIMATED:
        try:
            frames = read_animated(path)
        except (OSError, ValueError, SyntaxError):
            return check_image_file(path, expected, th)  # says why it cannot be decoded
        if frames.frames > 1:
            return check_video(frames, expected, th)
    if kind in (OutputKind.IMAGE, OutputKind.ANIMATED):
        return check_image_file(path, expected, th)
    if kind is OutputKind.VIDEO:
        return check_video_file(path, expected, th)
    if kind is OutputKind.AUDIO:
        return check_audio_file(path, expected, th)
    return None
