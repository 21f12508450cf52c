"""Turning measurements into verdicts: one check, one output's overall verdict, a batch's near-duplicates."""

from __future__ import annotations

from collections.abc import Sequence

from handlers.contract import OutputQa, QaCheck, QaVerdict

__all__ = ["hamming", "overall", "skipped", "with_duplicates", "worst"]

_RANK = {QaVerdict.SKIPPED: 0, QaVerdict.PASS: 1, QaVerdict.WARN: 2, QaVerdict.FAIL: 3}


def worst(verdicts: Sequence[QaVerdict]) -> QaVerdict:
    """Fail over warn over pass; all skipped (or none) is skipped."""
    return max(verdicts, key=_RANK.__getitem__, default=QaVerdict.SKIPPED)


def overall(checks: Sequence[QaCheck], phash: str | None = None) -> OutputQa:
    return OutputQa(verdict=worst([c.verdict for c in checks]), checks=list(checks), phash=phash)


def skipped(name: str, why: str) -> QaCheck:
    return QaCheck(name=name, verdict=QaVerdict.SKIPPED, message=why)


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def with_duplicates(
    results: Sequence[OutputQa | None], max_distance: int, sizes: Sequence[tuple[int, int] | None] | None = None
) -> list[OutputQa | None]:
    """Each image's ``duplicate`` check against the others of its batch (perceptual hashes within
    ``max_distance``): the later of two near-identical images fails, the first keeps its verdict. With ``sizes``,
    only images of the same size are a batch: an upscaled copy of an image is meant to look like it."""
    hashed = [(i, r.phash) for i, r in enumerate(results) if r is not None and r.phash is not None]
    if len(hashed) < 2:
        return list(results)
    size_of = list(sizes) if sizes is not None else [None] * len(results)
    out = list(results)
    for pos, (index, phash) in enumerate(hashed):
        assert phash is not None
        twins = [
            (j, hamming(phash, other))
            for j, other in hashed[:pos]
            if other is not None and size_of[j] == size_of[index]
        ]
        close = [(j, d) for j, d in twins if d <= max_distance]
        nearest = min((d for _, d in twins), default=None)
        if close:
            j, distance = min(close, key=lambda t: t[1])
            check = QaCheck(
                name="duplicate",
                verdict=QaVerdict.FAIL,
                score=distance,
                limit=max_distance,
                message=f"a near-duplicate of output {j + 1} of the batch (hash distance {distance})",
            )
        else:
            check = QaCheck(
                name="duplicate",
                verdict=QaVerdict.PASS,
                score=nearest,
                limit=max_distance,
            )
        current = out[index]
        assert current is not None
        out[index] = overall([*current.checks, check], current.phash)
    return out
