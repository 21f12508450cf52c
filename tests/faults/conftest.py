"""The fault matrix's figure, printed as the session's last line whenever the matrix ran."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.faults.test_fault_matrix import FIGURE

    if FIGURE:
        terminalreporter.write_line(
            f"{FIGURE['injected']} faults injected, {FIGURE['lost']} jobs lost, {FIGURE['twice']} run twice, "
            f"{FIGURE['false']} false successes"
        )
