"""A LoRA training dataset, the pure half: which archive members may be unpacked and where, captions with the
trigger word, and the checks that decide whether a dataset can train at all (``invalid_input``) or only deserves a
warning (few images, missing captions, a composition far from the guideline).

ComfyUI's ``LoadImageTextSetFromFolderNode`` reads ``<image>.txt`` beside each image in an input subfolder (and
kohya-style ``N_name`` subfolders, repeated N times), so the trigger word has to be in the caption files
themselves; the worker writes them through :func:`caption_with_trigger` when it stages a dataset.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Final

from handlers.contract import ErrorCode, JobError, Problem

__all__ = [
    "COMPOSITION_TARGET",
    "DatasetFile",
    "DatasetInvalid",
    "DatasetLimits",
    "DatasetReport",
    "ImageFacts",
    "ShotType",
    "ZipMember",
    "caption_with_trigger",
    "check_dataset",
    "composition_warning",
    "dataset_file",
    "plan_zip",
    "shot_type",
]

IMAGE_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg", ".webp"})
CAPTION_SUFFIX: Final = ".txt"
_REPEAT_FOLDER = re.compile(r"^[0-9]{1,4}_[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.()+-]{0,127}$")
#: Archive clutter that is not part of a dataset (macOS resource forks, Windows thumbnails).
_CLUTTER = re.compile(r"(^|/)(__MACOSX|\.DS_Store|Thumbs\.db|desktop\.ini)(/|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DatasetLimits:
    """Every bound of a dataset; all finite. Hard limits fail the job, the ``warn_*`` ones only warn."""

    min_images: int = 3
    max_images: int = 1000
    max_files: int = 2500
    """Files of any kind in an archive or listing: images, captions and what is skipped."""
    max_total_bytes: int = 2 * 1024**3
    """Unpacked size of everything staged."""
    max_file_bytes: int = 64 * 1024**2
    max_compression_ratio: int = 100
    """Unpacked / packed size of an archive member above which it is taken for a zip bomb."""
    min_side: int = 64
    warn_images: int = 10
    warn_side: int = 512

    def __post_init__(self) -> None:
        if not 0 < self.min_images <= self.max_images or self.max_files < self.max_images:
            raise ValueError("DatasetLimits: need 0 < min_images <= max_images <= max_files")
        for name in ("max_total_bytes", "max_file_bytes", "max_compression_ratio", "min_side"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DatasetLimits.{name} must be > 0")


class DatasetInvalid(ValueError):
    """The dataset cannot train: ``problems`` lists every reason, each at ``input.dataset...``."""

    code = ErrorCode.INVALID_INPUT
    retryable = False

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:3]))

    def to_job_error(self, job_id: str | None = None) -> JobError:
        return JobError.from_problems(self.problems, code=self.code, job_id=job_id)


def _problem(message: str, where: str | None = None) -> Problem:
    return Problem(path="input.dataset" + (f"[{where!r}]" if where else ""), message=message)


# ------------------------------------------------------------------------------------------------------ names


@dataclass(frozen=True, slots=True)
class DatasetFile:
    """A file the dataset keeps: its path inside the dataset folder and whether it is an image or a caption."""

    path: str
    caption: bool


def dataset_file(name: str) -> DatasetFile | None:
    """Where an archive member or a URL's file goes inside the dataset folder, or ``None`` to skip it (clutter,
    folders, files that are neither images nor captions). Raises :class:`ValueError` for a name that could climb
    out of the folder or fool a reader (absolute, ``..``, backslashes, drive letters, control characters)."""
    if "\\" in name or "\x00" in name or any(ord(c) < 32 for c in name) or re.match(r"^[A-Za-z]:", name):
        raise ValueError("unsafe file name")
    if name.startswith("/") or any(part == ".." for part in name.split("/")):
        raise ValueError("the name climbs out of the dataset folder")
    if name.endswith("/") or _CLUTTER.search(name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or parts[-1].startswith("."):
        return None
    suffix = PurePosixPath(parts[-1]).suffix.lower()
    if suffix not in IMAGE_SUFFIXES and suffix != CAPTION_SUFFIX:
        return None
    if len(parts) > 2:
        raise ValueError("nested deeper than one folder (the loader reads the dataset folder and its subfolders)")
    if not all(_SAFE_PART.match(p) for p in parts):
        raise ValueError("use letters, digits, spaces and _ . ( ) + - in dataset file names")
    return DatasetFile("/".join(parts), caption=suffix == CAPTION_SUFFIX)


@dataclass(frozen=True, slots=True)
class ZipMember:
    name: str
    size: int
    compressed: int
    is_dir: bool = False


def plan_zip(members: Sequence[ZipMember], limits: DatasetLimits) -> dict[str, str]:
    """Archive member name -> its path in the dataset folder, after every check on the archive's directory (before
    a byte is unpacked): file count, unpacked size, compression ratio, names. All problems at once."""
    problems: list[Problem] = []
    if len(members) > limits.max_files:
        raise DatasetInvalid([_problem(f"the archive holds {len(members)} entries; at most {limits.max_files}")])
    plan: dict[str, str] = {}
    targets: dict[str, str] = {}
    total = 0
    for member in members:
        if member.is_dir:
            continue
        try:
            kept = dataset_file(member.name)
        except ValueError as exc:
            problems.append(_problem(str(exc), member.name))
            continue
        if kept is None:
            continue
        if member.size > limits.max_file_bytes:
            problems.append(_problem(f"{member.size} bytes unpacked; at most {limits.max_file_bytes}", member.name))
        if member.size > 1024 * 1024 and member.size > limits.max_compression_ratio * max(1, member.compressed):
            problems.append(_problem("compressed more than any image is: refused as a zip bomb", member.name))
        folded = kept.path.lower()
        if folded in targets:
            problems.append(_problem(f"the same file as {targets[folded]!r} (names differ only in case)", member.name))
            continue
        targets[folded] = member.name
        total += member.size
        plan[member.name] = kept.path
    if total > limits.max_total_bytes:
        problems.append(_problem(f"unpacks to {total} bytes; at most {limits.max_total_bytes}"))
    if problems:
        raise DatasetInvalid(problems)
    return plan


# --------------------------------------------------------------------------------------------------- captions


def caption_with_trigger(caption: str, trigger: str) -> str:
    """``caption`` led by ``trigger`` (``"ohwx, a woman smiling"``), unless the trigger is already a whole word
    of it; an empty caption becomes the trigger alone."""
    caption = " ".join(caption.split())
    trigger = trigger.strip()
    if not trigger:
        return caption
    if re.search(rf"(?<![\w]){re.escape(trigger)}(?![\w])", caption):
        return caption
    return f"{trigger}, {caption}" if caption else trigger


class ShotType(StrEnum):
    FACE = "face"
    UPPER_BODY = "upper_body"
    FULL_BODY = "full_body"


#: The usual guideline for a character LoRA: mostly faces, some upper body, a few full body shots.
COMPOSITION_TARGET: Final[dict[ShotType, float]] = {
    ShotType.FACE: 0.7,
    ShotType.UPPER_BODY: 0.2,
    ShotType.FULL_BODY: 0.1,
}
_COMPOSITION_TOLERANCE: Final = 0.15
#: Caption tags that say what a shot shows, most specific first ("full body portrait" is a full body shot).
_SHOT_TAGS: Final = (
    (ShotType.FULL_BODY, re.compile(r"\b(full[ -]?body|full[ -]length|whole body|wide shot|head to toe)\b")),
    (
        ShotType.UPPER_BODY,
        re.compile(r"\b(upper[ -]?body|half[ -]?body|waist[ -]up|medium (close[ -]?up|shot)|cowboy shot|bust)\b"),
    ),
    (ShotType.FACE, re.compile(r"\b(close[ -]?up|headshot|head shot|face|portrait|selfie)\b")),
)


def shot_type(caption: str) -> ShotType | None:
    """What a caption's tags say the shot shows, if they say it."""
    text = caption.lower()
    for shot, pattern in _SHOT_TAGS:
        if pattern.search(text):
            return shot
    return None


def composition_warning(shots: Iterable[ShotType | None]) -> tuple[dict[str, int], str | None]:
    """Counts per shot type (``unknown`` included) and a warning when the known shots stray more than 15 points
    from the 70/20/10 face / upper body / full body guideline."""
    counted = Counter(shot.value if shot is not None else "unknown" for shot in shots)
    counts = {key: counted.get(key, 0) for key in [*(s.value for s in ShotType), "unknown"]}
    known = sum(counts[s.value] for s in ShotType)
    if known == 0:
        return counts, None
    shares = {s: counts[s.value] / known for s in ShotType}
    if all(abs(shares[s] - COMPOSITION_TARGET[s]) <= _COMPOSITION_TOLERANCE for s in ShotType):
        return counts, None
    got = " / ".join(f"{round(shares[s] * 100)}% {s.value.replace('_', ' ')}" for s in ShotType)
    unknown = f" ({counts['unknown']} image(s) of unknown shot type not counted)" if counts["unknown"] else ""
    return counts, f"dataset composition is {got}; the guideline is 70% face / 20% upper body / 10% full body{unknown}"


# ------------------------------------------------------------------------------------------------------ checks


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What staging learned about one image: ``error`` when it does not decode."""

    path: str
    bytes: int
    width: int | None = None
    height: int | None = None
    error: str | None = None
    caption: str | None = None
    """The caption as given (``None``: no caption file)."""


@dataclass(frozen=True)
class DatasetReport:
    images: int
    captioned: int
    total_bytes: int
    shots: dict[str, int]
    warnings: list[str] = field(default_factory=list)


def check_dataset(
    images: Sequence[ImageFacts], orphans: Sequence[str], limits: DatasetLimits, *, resolution: int | None = None
) -> DatasetReport:
    """The verdict on a staged dataset: :class:`DatasetInvalid` with every hard problem (too few or too many images,
    undecodable or tiny ones), else a report with the warnings (few images, low resolution, captions missing or
    without a matching image, composition). ``resolution``: the side the template trains at."""
    problems: list[Problem] = []
    warnings: list[str] = []
    for image in images:
        if image.error is not None:
            problems.append(_problem(f"cannot be decoded as an image: {image.error}", image.path))
        elif image.width is not None and image.height is not None and min(image.width, image.height) < limits.min_side:
            problems.append(
                _problem(f"is {image.width}x{image.height}; each side must be at least {limits.min_side}", image.path)
            )
    if len(images) < limits.min_images:
        problems.append(_problem(f"has {len(images)} image(s); at least {limits.min_images} are needed"))
    if len(images) > limits.max_images:
        problems.append(_problem(f"has {len(images)} images; at most {limits.max_images}"))
    if problems:
        raise DatasetInvalid(problems)
    if len(images) < limits.warn_images:
        warnings.append(f"dataset has {len(images)} images; {limits.warn_images} or more usually train better")
    want = max(limits.warn_side, resolution or 0)
    small = [i.path for i in images if i.width is not None and i.height is not None and min(i.width, i.height) < want]
    if small:
        warnings.append(
            f"{len(small)} image(s) smaller than {want} px on a side (upscaled when training): {_few(small)}"
        )
    uncaptioned = [i.path for i in images if not (i.caption or "").strip()]
    if uncaptioned:
        warnings.append(
            f"{len(uncaptioned)} of {len(images)} image(s) have no caption (trained on the trigger word alone): "
            f"{_few(uncaptioned)}"
        )
    if orphans:
        warnings.append(f"{len(orphans)} caption file(s) without an image, ignored: {_few(orphans)}")
    shots, composition = composition_warning(shot_type(i.caption or "") for i in images)
    if composition is not None:
        warnings.append(composition)
    return DatasetReport(
        images=len(images),
        captioned=len(images) - len(uncaptioned),
        total_bytes=sum(i.bytes for i in images),
        shots=shots,
        warnings=warnings,
    )


def _few(names: Sequence[str], shown: int = 5) -> str:
    head = ", ".join(names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")
