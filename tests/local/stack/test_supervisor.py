"""Child processes: own process groups, teardown that reaches grandchildren and kills what ignores SIGTERM."""

from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

import pytest

from handlers.local.stack import ChildState, Supervisor, SupervisorLimits

#: Starts a grandchild in the same group, writes its pid to the FIFO ``argv[2]``, then waits forever.
PARENT = """
import subprocess, sys, time, signal
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[2], "w") as fifo:
    fifo.write(f"{child.pid}\\n")
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent has not reaped it yet).
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


def _grandchild(fifo: Path, timeout_s: float = 30.0) -> int:
    # Non-blocking open, then wait for the pid to arrive: a child that dies before writing fails the test after
    # ``timeout_s`` instead of leaving a blocking open() to hang the run. (No writer yet is not EOF on Linux.)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        assert ready, f"no pid on {fifo} within {timeout_s} s: the child died before writing it?"
        return int(os.read(fd, 64))
    finally:
        os.close(fd)


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_stop_all_ends_children_and_their_children(tmp_path: Path, mode: str) -> None:
    supervisor = Supervisor(tmp_path / "logs", SupervisorLimits(term_timeout_s=1.0, kill_timeout_s=5.0))
    with supervisor:
        fifo = tmp_path / "pids"
        os.mkfifo(fifo)
        child = supervisor.start("parent", [sys.executable, "-c", PARENT, mode, str(fifo)])
        grandchild = _grandchild(fifo)
        assert os.getpgid(child.pid) == child.pid  # its own group: a terminal's Ctrl-C does not reach it
        assert os.getpgid(grandchild) == child.pid
        assert child.poll() is None
    assert not _alive(child.pid)
    assert not _alive(grandchild)
    assert child.state is ChildState.STOPPED
    expected = -signal.SIGKILL if mode == "stubborn" else -signal.SIGTERM
    assert child.process.returncode == expected


def test_children_that_exit_on_their_own_are_reported(tmp_path: Path) -> None:
    with Supervisor(tmp_path / "logs") as supervisor:
        child = supervisor.start("crasher", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"])
        child.process.wait(20)
        assert supervisor.exited() == [child]
        assert child.state is ChildState.EXITED
        assert child.log_tail() == "bad config"
        supervisor.stop_all()  # idempotent on ended children
    assert child.process.returncode == 3


#: A supervisor in its own process: starts one child, reports the child's pid on the FIFO ``argv[1]``, waits.
SUPERVISOR = """
import sys, time
from pathlib import Path
from handlers.local.stack import Supervisor
supervisor = Supervisor(Path(sys.argv[2]))
child = supervisor.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "w") as fifo:
    fifo.write(f"{child.pid}\\n")
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux only")
def test_children_end_even_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import REPO

    fifo = tmp_path / "pid"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(fifo), str(tmp_path / "logs")], env=env)
    try:
        child = _grandchild(fifo)
        handle = os.pidfd_open(child)
        try:
            process.kill()  # SIGKILL: no finally, no atexit in the supervisor
            process.wait()
            ended, _, _ = select.select([handle], [], [], 20)  # readable once the child has exited
        finally:
            os.close(handle)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert ended, "the child outlived its killed supervisor"
