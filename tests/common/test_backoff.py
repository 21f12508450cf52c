"""The one Backoff both halves use (ComfyUI reconnects, RunPod/webhook retries, resubmission)."""

from __future__ import annotations

import itertools
import random

import pytest

from handlers.common import Backoff


def test_ceiling_grows_by_factor_and_is_capped() -> None:
    backoff = Backoff(base_s=0.5, factor=2, cap_s=3, jitter=0)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert list(itertools.islice(backoff.delays(), 6)) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert Backoff(base_s=1, cap_s=8, factor=3, jitter=0).ceiling(3) == 8.0
    assert Backoff(base_s=1, cap_s=5).ceiling(10**6) == 5.0  # no overflow however long a loop retries


def test_jitter_draws_below_the_ceiling_and_never_under_the_floor() -> None:
    half = Backoff(base_s=1, cap_s=8, jitter=0.5)
    assert list(itertools.islice(half.delays(lambda: 0.0), 3)) == [1.0, 2.0, 4.0]
    assert list(itertools.islice(half.delays(lambda: 1.0), 3)) == [0.5, 1.0, 2.0]
    full = Backoff(base_s=1.0, cap_s=5.0, min_s=0.1)
    rng = random.Random(7)
    for attempt in range(1, 10):
        assert 0.1 <= full.delay(attempt, rng.random) <= full.ceiling(attempt)
    assert full.delay(1, lambda: 1.0) == 0.1


@pytest.mark.parametrize(
    "bad",
    [
        {"base_s": 5, "cap_s": 1},
        {"base_s": float("inf"), "cap_s": float("inf")},
        {"min_s": 1, "base_s": 0.5},
        {"base_s": -1},
        {"factor": 0.5},
        {"jitter": 2},
        {"cap_s": float("nan")},
    ],
)
def test_unbounded_or_inconsistent_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**bad)
