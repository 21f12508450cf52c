"""Audio checks with soundfile: decodes, silence ratio, clipping, and duration against the words it was asked to
speak (where the graph says)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile

from handlers.contract import OutputQa, QaCheck, QaThresholds, QaVerdict
from handlers.worker.qa._expect import Expected
from handlers.worker.qa._verdicts import overall, skipped

__all__ = ["check_audio", "check_audio_file", "read_audio"]

_WINDOW_S: Final = 0.02


def read_audio(path: Path) -> tuple[np.ndarray[Any, np.dtype[np.float32]], int]:
    """Mono float samples in [-1, 1] and the sample rate. Blocking."""
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.asarray(data.mean(axis=1), dtype=np.float32), int(rate)


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def spoken_units(text: str) -> int:
    """Words, counting each CJK character as one (those scripts put no spaces between words)."""
    return sum(1 for w in _CJK.sub(" ", text).split()) + len(_CJK.findall(text))


def check_audio(
    samples: np.ndarray[Any, np.dtype[np.float32]], rate: int, expected: Expected | None, th: QaThresholds
) -> OutputQa:
    if samples.size == 0 or rate <= 0:
        return overall([QaCheck(name="decodes", verdict=QaVerdict.FAIL, message="no audio samples")])
    duration = samples.size / rate
    checks = [QaCheck(name="decodes", verdict=QaVerdict.PASS, score=round(duration, 3))]
    window = max(1, int(rate * _WINDOW_S))
    usable = samples[: samples.size - samples.size % window] if samples.size >= window else samples
    frames = usable.reshape(-1, window) if usable.size >= window else usable.reshape(1, -1)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    level = 20 * np.log10(np.maximum(rms, 1e-12))
    silent = float((level < th.silence_db).mean())
    checks.append(
        QaCheck(
            name="silence",
            verdict=QaVerdict.FAIL if silent > th.max_silence else QaVerdict.PASS,
            score=round(silent, 4),
            limit=th.max_silence,
            message="(almost) silent" if silent > th.max_silence else None,
        )
    )
    clipped = float((np.abs(samples) >= 0.999).mean())
    checks.append(
        QaCheck(
            name="clipping",
            verdict=QaVerdict.WARN if clipped > th.max_audio_clipped else QaVerdict.PASS,
            score=round(clipped, 5),
            limit=th.max_audio_clipped,
        )
    )
    text = expected.text if expected is not None else None
    words = spoken_units(text) if text else 0
    if words:
        per_word = duration / words
        low, high = th.seconds_per_word
        ok = low <= per_word <= high
        checks.append(
            QaCheck(
                name="duration",
                verdict=QaVerdict.PASS if ok else QaVerdict.FAIL,
                score=round(per_word, 3),
                limit=high if per_word > high else low,
                message=None if ok else f"{duration:.2f} s for {words} words ({per_word:.2f} s a word)",
            )
        )
    else:
        checks.append(skipped("duration", "no text to speak is known for this output"))
    assert all(math.isfinite(c.score) for c in checks if c.score is not None)
    return overall(checks)


def check_audio_file(path: Path, expected: Expected | None, th: QaThresholds) -> OutputQa:
    """Blocking: run in a thread."""
    try:
        samples, rate = read_audio(path)
    except (OSError, RuntimeError, ValueError, soundfile.LibsndfileError) as exc:
        return overall([QaCheck(name="decodes", verdict=QaVerdict.FAIL, message=f"cannot decode: {exc}")])
    return check_audio(samples, rate, expected, th)
