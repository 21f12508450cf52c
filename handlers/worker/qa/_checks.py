"""Which checks an output gets, by kind: one blocking entry point per file."""

from __future__ import annotations

from pathlib import Path

from handlers.contract import OutputKind, OutputQa, QaThresholds
from handlers.worker.qa._audio import check_audio_file
from handlers.worker.qa._expect import Expected
from handlers.worker.qa._image import check_image_file
from handlers.worker.qa._video import check_video_file

__all__ = ["check_file"]


def check_file(path: Path, kind: OutputKind, expected: Expected | None, th: QaThresholds) -> OutputQa | None:
    """The QA of one output file; ``None`` for kinds that have no checks (latents, 3D, other files).
    Blocking: run in a thread."""
    if kind in (OutputKind.IMAGE, OutputKind.ANIMATED):
        return check_image_file(path, expected, th)
    if kind is OutputKind.VIDEO:
        return check_video_file(path, expected, th)
    if kind is OutputKind.AUDIO:
        return check_audio_file(path, expected, th)
    return None
