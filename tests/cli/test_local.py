"""``comfy-relay local up``: it starts every part, and leaves nothing behind when stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import CliRunner, cli_argv, cli_env


def _processes_in(folder: Path) -> list[int]:
    """Live processes whose working directory is ``folder`` (every part of a stack started there inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (
                Path(os.readlink(entry / "cwd")) == folder
                and "Z" not in (entry / "stat").read_text().split(")")[-1][:3]
            ):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to inspect
    return found


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("how", ["ctrl-c", "local down"])
def test_stopping_local_up_leaves_no_process(tmp_path: Path, run_cli: CliRunner, how: str) -> None:
    state = tmp_path / "state"
    errors = (tmp_path / "up.stderr").open("w")
    up = subprocess.Popen(
        cli_argv("local", "up", "--port-base", "0", "--state-dir", str(state), "--json"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        assert up.stdout is not None
        # --json prints the whole description as one document once every part is healthy.
        lines = []
        for line in up.stdout:
            lines.append(line)
            if line.startswith("}"):
                break
        info = json.loads("".join(lines))
        pids = info["pids"]
        assert {"moto", "runpod", "comfyui", "worker-1", "events"} <= set(pids)
        assert set(pids.values()) <= set(_processes_in(tmp_path))
        status = run_cli("local", "status", "--state-dir", str(state), "--json")
        assert json.loads(status.stdout)["pids"] == pids

        if how == "ctrl-c":
            up.send_signal(signal.SIGINT)  # what the terminal sends to the foreground process
        else:
            down = run_cli("local", "down", "--state-dir", str(state))
            assert down.returncode == 0, down.stderr
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        assert up.stdout is not None
        up.stdout.close()
        errors.close()
    assert [name for name, pid in pids.items() if not _gone(pid)] == []
    assert _processes_in(tmp_path) == []
    assert not (state / "stack.json").exists()


def test_a_port_in_use_gives_a_clear_message(tmp_path: Path, run_cli: CliRunner) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("local", "up", "--port-base", str(port), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (ComfyUI emulator) is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_local_env_without_a_stack_says_how_to_start_one(tmp_path: Path, run_cli: CliRunner) -> None:
    result = run_cli("local", "env", "--state-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "comfy-relay local up" in result.stderr


def test_a_part_that_never_answers_is_named_and_nothing_is_left(tmp_path: Path, run_cli: CliRunner) -> None:
    # A ComfyUI URL where nothing listens: the stack uses it instead of the emulator, and gives up on it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    state = tmp_path / "state"
    result = run_cli(
        "local", "up", "--port-base", "0", "--state-dir", str(state), "--ready-timeout", "1", "--workers", "0",
        env={"COMFYUI_URL": f"http://127.0.0.1:{dead_port}"},
    )  # fmt: skip
    assert result.returncode == 1
    assert f"ComfyUI at http://127.0.0.1:{dead_port} did not answer" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (state / "stack.json").exists()
    # The parts it had started (moto, the RunPod emulator) were stopped.
    assert sorted(p.name for p in (state / "logs" / "latest").iterdir()) == ["moto.log", "runpod.log"]
    assert _processes_in(tmp_path) == []
