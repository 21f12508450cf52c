"""Quality checks on outputs: what a job asks for (``input.qa``), what each output carries (``OutputItem.qa``), and
the job's overall verdict with every attempt (``JobResult.qa``). Also the preview options (``output.previews``).

Thresholds are typed with finite defaults; a check that could not run (no decoder, nothing asked to compare with)
says ``skipped`` with the reason, never ``pass``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from handlers.contract._common import StrictModel

__all__ = [
    "JobQa",
    "OutputQa",
    "OutputRole",
    "PreviewOptions",
    "QaAttempt",
    "QaCheck",
    "QaFailure",
    "QaOptions",
    "QaPolicy",
    "QaThresholds",
    "QaVerdict",
]

MAX_QA_RETRIES = 5


class QaPolicy(StrEnum):
    """What a failed check does to the job."""

    REPORT = "report"
    """Record the verdicts; the job succeeds (the default)."""
    FAIL = "fail"
    """The job fails with ``qa_failed``, naming the outputs and checks."""
    RETRY = "retry"
    """Run the graph again with new seeds, up to ``max_retries`` times; then fail as ``fail`` does."""


class QaVerdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"
    """The check could not run (no decoder, nothing to compare with): neither a pass nor a failure."""


class QaThresholds(StrictModel):
    """Limits of the checks; defaults are meant to catch broken outputs, not to judge taste."""

    size_tolerance_px: int = Field(default=0, ge=0, le=4096, description="allowed difference from the asked size")
    aspect_tolerance: float = Field(default=0.02, ge=0, le=1, description="allowed relative aspect-ratio difference")
    min_std: float = Field(
        default=2.0, ge=0, le=128, description="pixel standard deviation (0-255) under which an image is uniform"
    )
    black_mean: float = Field(default=4.0, ge=0, le=255, description="mean brightness under which an image is black")
    min_sharpness: float = Field(
        default=0.0,
        ge=0,
        description="variance of the Laplacian under which an image fails as blurred (0: measured, never failed)",
    )
    max_clipped: float = Field(
        default=0.25, ge=0, le=1, description="share of pixels at 0 or 255 above which an image warns as clipped"
    )
    duplicate_distance: int = Field(
        default=4, ge=0, le=64, description="64-bit perceptual hashes this close (Hamming) are near-duplicates"
    )
    min_motion: float = Field(
        default=0.5, ge=0, le=255, description="mean frame-to-frame change (0-255) under which a video is frozen"
    )
    duration_tolerance: float = Field(
        default=0.1, ge=0, le=10, description="allowed relative difference of a video's frames/duration"
    )
    max_silence: float = Field(default=0.9, ge=0, le=1, description="share of silent audio above which it fails")
    silence_db: float = Field(default=-50.0, ge=-120, le=0, description="level (dBFS) under which audio is silent")
    max_audio_clipped: float = Field(
        default=0.001, ge=0, le=1, description="share of audio samples at full scale above which it warns as clipped"
    )
    seconds_per_word: tuple[float, float] = Field(
        default=(0.12, 1.5), description="speech duration per word of the text, lowest and highest plausible"
    )


class QaOptions(StrictModel):
    """``input.qa``: the policy and thresholds of the automated checks (a template may give defaults)."""

    enabled: bool = Field(default=True, description="false: no checks at all")
    policy: QaPolicy = QaPolicy.REPORT
    max_retries: int = Field(default=2, ge=0, le=MAX_QA_RETRIES, description="policy retry: new seeds, at most")
    thresholds: QaThresholds = Field(default_factory=QaThresholds)


class QaCheck(StrictModel):
    """One check of one output."""

    name: str = Field(description="decodes, size, aspect, uniform, black, sharpness, clipping, duplicate, ...")
    verdict: QaVerdict
    score: float | None = Field(default=None, description="what was measured")
    limit: float | None = Field(default=None, description="the threshold it was held to")
    message: str | None = None


class OutputQa(StrictModel):
    """``OutputItem.qa``: every check of one output and its overall verdict (the worst of its checks)."""

    verdict: QaVerdict
    checks: list[QaCheck] = Field(default_factory=list)
    phash: str | None = Field(default=None, description="64-bit perceptual hash (hex), for near-duplicate search")

    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.verdict is QaVerdict.FAIL]

    def brief(self) -> OutputQa:
        """The verdict with only the checks that failed or warned (what a job record keeps)."""
        kept = [c for c in self.checks if c.verdict in (QaVerdict.FAIL, QaVerdict.WARN)]
        return OutputQa(verdict=self.verdict, checks=kept)


class QaFailure(StrictModel):
    """An output that failed, and the checks it failed."""

    node_id: str
    filename: str | None = None
    s3_uri: str | None = None
    checks: list[str]


class QaAttempt(StrictModel):
    """One run of the graph and its verdict (policy ``retry`` keeps each)."""

    attempt: int = Field(ge=1)
    verdict: QaVerdict
    seeds: dict[str, int] = Field(default_factory=dict, description='"<node id>.<input>": the seed it ran with')
    failures: list[QaFailure] = Field(default_factory=list)


class JobQa(StrictModel):
    """``JobResult.qa``: the job's verdict (its last attempt's), the policy applied, and every attempt."""

    verdict: QaVerdict
    policy: QaPolicy
    attempts: list[QaAttempt] = Field(default_factory=list)


class OutputRole(StrEnum):
    """What a derived output is to its source (``OutputItem.derived_from``)."""

    THUMBNAIL = "thumbnail"
    POSTER = "poster"
    PREVIEW = "preview"
    WAVEFORM = "waveform"


class PreviewOptions(StrictModel):
    """``output.previews``: small derived outputs a UI can show at once, each uploaded as soon as its source is."""

    enabled: bool = Field(default=True, description="thumbnails for images, poster + preview for video, waveforms")
    long_side: int = Field(default=256, ge=16, le=2048, description="thumbnail/poster size, long side in pixels")
    video_seconds: float = Field(default=3.0, gt=0, le=30, description="length of a video's animated preview")
    video_fps: float = Field(default=8.0, gt=0, le=30, description="frame rate of a video's animated preview")
    quality: int = Field(default=80, ge=1, le=100, description="WebP quality")
