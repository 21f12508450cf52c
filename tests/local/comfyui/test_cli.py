"""``comfy-relay emulate comfyui`` as its own process: the ready line, flags, and the dying-process fault."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handlers.cli import build_parser

TINY = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 5}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}
READY = "ComfyUI emulator listening on "


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    args = ["--port", "0", "--data-dir", str(tmp_path / "data"), "--models", str(tmp_path / "models")]
    args += ["--exit-at", "EmptyImage", "--exit-code", "3", "--history-delay-calls", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "handlers.cli", "emulate", "comfyui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(READY), line + (process.stderr.read() if process.stderr else "")
        yield process, line.removeprefix(READY).strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_flags_reach_the_server_and_exit_at_kills_it(emulator_process: tuple[subprocess.Popen[str], str]) -> None:
    process, url = emulator_process
    faults = httpx.get(url + "/_emulator/faults").json()
    assert (faults["exit_at"], faults["exit_code"], faults["history_delay_calls"]) == ("EmptyImage", 3, 1)
    assert httpx.post(url + "/prompt", json={"prompt": TINY}).status_code == 200
    assert process.wait(timeout=30) == 3


def test_parser_rejects_bad_values() -> None:
    parser = build_parser()
    args = parser.parse_args(["emulate", "comfyui", "--port", "0", "--step-delay", "0.5", "--hold-at", "3"])
    assert (args.step_delay, args.hold_at) == (0.5, "3")
    for bad in (["--step-delay", "-1"], ["--ws-drop-after", "-2"], ["--step-delay", "nan"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["emulate", "comfyui", "--port", "0", *bad])
