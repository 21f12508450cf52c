"""Child processes of the local stack: each in its own process group, all torn down together.

A child runs in a new session, so a Ctrl-C at the terminal reaches only the supervisor, which then decides the order
of shutdown; signalling the group (not the pid) also reaches anything the child spawned. Teardown is SIGTERM to
every group, a bounded wait, then SIGKILL to whatever is left. On Linux each child also asks the kernel for SIGTERM
when the supervisor dies, so not even ``kill -9`` of the supervisor leaves the stack running.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["Child", "ChildState", "Supervisor", "SupervisorLimits"]


class ChildState(enum.Enum):
    RUNNING = "running"
    EXITED = "exited"
    STOPPED = "stopped"  # ended by the supervisor


@dataclass(frozen=True, slots=True)
class SupervisorLimits:
    #: How long children get to exit after SIGTERM before SIGKILL.
    term_timeout_s: float = 5.0
    #: How long to wait for a SIGKILLed group to be reaped.
    kill_timeout_s: float = 2.0


@dataclass(eq=False)
class Child:
    """One supervised process. ``log_path`` holds its stdout and stderr."""

    name: str
    argv: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_path: Path
    state: ChildState = ChildState.RUNNING
    stopped_by_us: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        """The exit status once the process ended, else ``None``."""
        code = self.process.poll()
        if code is not None and self.state is ChildState.RUNNING:
            self.state = ChildState.STOPPED if self.stopped_by_us else ChildState.EXITED
        return code

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1
_GONE_POLL_S = 0.01


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: only async-signal-safe work (one prctl call) belongs here.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The group may be gone already (exited and reaped); that is the outcome we wanted.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _live_members(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running. Zombies do not count: they hold no port and no file,
    and an orphaned one waits for whoever reaps orphans here (not always a prompt init in a container)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


class Supervisor:
    """Starts children and guarantees they end: ``stop_all`` is idempotent and also runs on ``__exit__``."""

    def __init__(self, log_dir: Path, limits: SupervisorLimits | None = None) -> None:
        self.log_dir = log_dir
        self.limits = limits or SupervisorLimits()
        #: The kernel's parent-death signal exists on Linux only.
        self.die_with_parent = sys.platform.startswith("linux")
        self.children: list[Child] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - argv is built by the stack, never from a shell string
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509 - see _die_with_parent
            )
        child = Child(name=name, argv=tuple(argv), process=process, log_path=log_path)
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        """Children that ended without being asked to."""
        return [c for c in self.children if c.poll() is not None and c.state is ChildState.EXITED]

    def stop_some(self, children: list[Child]) -> None:
        self._stop(children)

    def stop_all(self) -> None:
        # Reverse start order: clients (workers, event loop) go before the services they talk to.
        self._stop(list(reversed(self.children)))

    def _stop(self, children: list[Child]) -> None:
        for child in children:
            child.stopped_by_us = True
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.limits.term_timeout_s
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(max(deadline - time.monotonic(), 0.0))
        # Kill the whole group even when the leader exited: a grandchild may still hold a port.
        for child in children:
            if child.process.poll() is None or _live_members(child.pid):
                _signal_group(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + self.limits.kill_timeout_s
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(max(deadline - time.monotonic(), 0.0))
            child.poll()
            # Grandchildren are not ours to wait for: watch the group until its last member has gone.
            while _live_members(child.pid) and time.monotonic() < deadline:
                time.sleep(_GONE_POLL_S)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()
