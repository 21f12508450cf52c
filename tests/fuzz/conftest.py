"""Fuzzing every boundary model with hypothesis. The figure is unhandled exceptions, which must be 0.

Two profiles: ``ci`` (the default: a fast subset that runs with the suite) and ``long`` (tens of thousands of
examples in all: ``COMFY_RELAY_FUZZ=long .venv/bin/python -m pytest tests/fuzz -p no:randomly -q``). The session
ends with one line: ``fuzz: N examples over M boundaries, U unhandled exceptions``.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("COMFY_RELAY_FUZZ", "ci")
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every CI run: a red build is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

#: Examples tried per boundary, and boundaries whose test failed (an unhandled exception, shrunk by hypothesis).
EXAMPLES: Counter[str] = Counter()
FAILED: set[str] = set()


def fuzz_settings() -> settings:
    return settings.get_profile(PROFILE)


def count(boundary: str) -> None:
    EXAMPLES[boundary] += 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and item.path.parent.name == "fuzz":
        FAILED.add(item.name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not EXAMPLES:
        return
    terminalreporter.write_line(
        f"fuzz ({PROFILE}): {sum(EXAMPLES.values())} examples over {len(EXAMPLES)} boundaries, "
        f"{len(FAILED)} unhandled exceptions"
    )
