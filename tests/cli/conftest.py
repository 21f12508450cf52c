"""Drive the CLI as a subprocess, the way a person runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(**extra: str) -> dict[str, str]:
    prefixes = ("COMFYUI_", "RUNPOD_", "AWS_", "RELAY_", "COMFY_RELAY_", "XDG_STATE_HOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "160"
    env.update(extra)
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.cli._entry", *args]


@pytest.fixture
def run_cli(tmp_path: Path) -> CliRunner:
    """``run_cli("demo", ...)``: the command's result, run in ``tmp_path`` with no cloud variables inherited and
    the per-user state folder inside ``tmp_path`` (a developer's own stack is never seen)."""

    def run(
        *args: str, timeout: float = 120.0, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli_argv(*args),
            cwd=cwd or tmp_path,
            env=cli_env(**{"XDG_STATE_HOME": str(tmp_path / "xdg-state"), **(env or {})}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local stack for the CLI tests that need a running one; yields its state folder (for --state-dir)."""
    from handlers.local.stack import LocalStack, StackConfig

    state_dir = tmp_path_factory.mktemp("stack") / ".comfy-relay"
    with LocalStack(StackConfig(state_dir=state_dir, port_base=0, workers=1)) as stack:
        stack.start()
        yield state_dir
