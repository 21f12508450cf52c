"""Image checks (pure, numpy + Pillow): decodes, size and aspect against what was asked, uniform/black (the NaN or
fp16 VAE failure), sharpness (variance of the Laplacian), clipping, and a perceptual hash for near-duplicates."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from handlers.contract import OutputQa, QaCheck, QaThresholds, QaVerdict
from handlers.worker.qa._expect import Expected
from handlers.worker.qa._verdicts import overall, skipped

__all__ = ["check_image", "check_image_file", "laplacian_variance", "no_checks", "phash"]

#: Sharpness and clipping are measured on the image scaled to this long side: stable across resolutions, and
#: cheap (a 1024x1024 image costs a few milliseconds).
_MEASURE_SIDE: Final = 512
_HASH_SIDE: Final = 32


def _gray(image: Image.Image) -> npt.NDArray[np.float32]:
    return np.asarray(image.convert("L"), dtype=np.float32)


def laplacian_variance(gray: npt.NDArray[np.float32]) -> float:
    """Variance of the 4-neighbour Laplacian: high for crisp edges, near zero for a blurred or flat image."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * gray[1:-1, 1:-1]
    return float(lap.var())


def _dct_matrix(n: int) -> npt.NDArray[np.float64]:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * x + 1) * k / (2 * n))


_DCT: Final = _dct_matrix(_HASH_SIDE)


def phash(image: Image.Image) -> str:
    """The 64-bit DCT perceptual hash (hex): 32x32 grey, low 8x8 frequencies above their median."""
    small = np.asarray(image.convert("L").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.BILINEAR), np.float64)
    low = (_DCT @ small @ _DCT.T)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def _size_checks(width: int, height: int, expected: Expected | None, th: QaThresholds) -> list[QaCheck]:
    if expected is None or expected.width is None or expected.height is None:
        why = "the graph does not say what size it makes"
        return [skipped("size", why), skipped("aspect", why)]
    off = max(abs(width - expected.width), abs(height - expected.height))
    size = QaCheck(
        name="size",
        verdict=QaVerdict.PASS if off <= th.size_tolerance_px else QaVerdict.FAIL,
        score=off,
        limit=th.size_tolerance_px,
        message=f"{width}x{height}, asked {expected.width}x{expected.height}",
    )
    asked, got = expected.width / expected.height, width / height
    ratio = abs(got - asked) / asked
    aspect = QaCheck(
        name="aspect",
        verdict=QaVerdict.PASS if ratio <= th.aspect_tolerance else QaVerdict.FAIL,
        score=round(ratio, 4),
        limit=th.aspect_tolerance,
    )
    return [size, aspect]


def check_image(
    image: Image.Image, expected: Expected | None, th: QaThresholds, *, sizes: bool = True
) -> tuple[list[QaCheck], str]:
    """Every check of one decoded image, and its perceptual hash. ``sizes=False`` leaves size and aspect out (a
    video frame, whose size the video's checks judge)."""
    checks: list[QaCheck] = [QaCheck(name="decodes", verdict=QaVerdict.PASS)]
    if sizes:
        checks += _size_checks(image.width, image.height, expected, th)
    measured = image.convert("RGB")
    if max(measured.size) > _MEASURE_SIDE:
        measured.thumbnail((_MEASURE_SIDE, _MEASURE_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(measured, dtype=np.float32)
    std = float(rgb.std())
    mean = float(rgb.mean())
    checks.append(
        QaCheck(
            name="uniform",
            verdict=QaVerdict.FAIL if std < th.min_std else QaVerdict.PASS,
            score=round(std, 3),
            limit=th.min_std,
            message="one flat colour" if std < th.min_std else None,
        )
    )
    black = mean < th.black_mean
    checks.append(
        QaCheck(
            name="black",
            verdict=QaVerdict.FAIL if black else QaVerdict.PASS,
            score=round(mean, 3),
            limit=th.black_mean,
            message="all black (a NaN / fp16 VAE failure looks like this)" if black else None,
        )
    )
    sharp = laplacian_variance(_gray(measured))
    blurred = th.min_sharpness > 0 and sharp < th.min_sharpness
    checks.append(
        QaCheck(
            name="sharpness",
            verdict=QaVerdict.FAIL if blurred else QaVerdict.PASS,
            score=round(sharp, 3),
            limit=th.min_sharpness or None,
        )
    )
    clipped = float(((rgb == 0) | (rgb == 255)).all(axis=-1).mean())
    checks.append(
        QaCheck(
            name="clipping",
            verdict=QaVerdict.WARN if clipped > th.max_clipped else QaVerdict.PASS,
            score=round(clipped, 4),
            limit=th.max_clipped,
        )
    )
    return checks, phash(image)


def check_image_file(path: Path, expected: Expected | None, th: QaThresholds) -> OutputQa:
    """Open, decode and check one image file (the first frame of an animated one). Blocking: run in a thread."""
    try:
        with Image.open(path) as img:
            img.load()
            checks, hashed = check_image(img, expected, th)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        failed = QaCheck(name="decodes", verdict=QaVerdict.FAIL, message=f"cannot decode: {exc}")
        return overall([failed])
    return overall(checks, hashed)


def no_checks(reason: str) -> OutputQa:
    return overall([skipped("decodes", reason)])
