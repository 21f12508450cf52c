"""Supervising a ComfyUI process the worker started itself (``COMFYUI_COMMAND``).

The process is a plain ``subprocess.Popen`` (not an asyncio subprocess), so it can be started before the RunPod SDK
creates its event loop and outlive any one loop. A reader thread keeps its last log lines (shown when it dies
before becoming ready) and passes them to the log. Liveness is ``poll()``: cheap, non-blocking, loop-independent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

__all__ = ["ComfyProcess", "ComfyUIDied"]

logger = logging.getLogger("handlers.worker.supervisor")
comfy_logger = logging.getLogger("comfyui")

_POLL_S = 0.05


class ComfyUIDied(Exception):
    """The supervised ComfyUI process exited before it was ready; ``last_lines`` is the tail of its output. (Not a
    ``ComfyUIError``: the client never raises it; the job maps it to ``comfyui_unavailable``.)"""

    def __init__(self, message: str, *, returncode: int | None, last_lines: Sequence[str]) -> None:
        tail = "\n".join(last_lines[-20:])
        super().__init__(f"{message} (exit status {returncode})" + (f"; last output:\n{tail}" if tail else ""))
        self.returncode = returncode
        self.last_lines = list(last_lines)


class ComfyProcess:
    """One ComfyUI process at a time: ``start``, ``alive``, ``wait_exit``, ``stop``. ``generation`` counts starts,
    so caches tied to a ComfyUI process (its ``/object_info``) know when they are stale."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        keep_lines: int = 200,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv = tuple(argv)
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.generation = 0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def last_lines(self) -> list[str]:
        return list(self._lines)

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start(self) -> None:
        """Start ComfyUI (again, after an exit). Blocking but quick: it only forks."""
        if self.alive():
            return
        if self._process is not None:
            self.restarts += 1
            logger.warning(
                "restarting ComfyUI after it exited with status %s", self._process.returncode, extra={"pid": self.pid}
            )
        self._lines.clear()
        self._process = subprocess.Popen(  # noqa: S603 (the operator's own command line)
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env,
            cwd=self._cwd,
            # Same process group as the worker: whoever kills the worker's group kills ComfyUI too, never orphans it.
        )
        self.generation += 1
        self._reader = threading.Thread(target=self._read, args=(self._process,), name="comfyui output", daemon=True)
        self._reader.start()
        logger.info("started ComfyUI: %s", " ".join(self.argv), extra={"pid": self._process.pid})

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._lines.append(line)
            comfy_logger.info(line)
        process.stdout.close()

    def died(self, what: str = "ComfyUI exited") -> ComfyUIDied:
        if self._reader is not None:
            self._reader.join(timeout=1.0)  # the last lines are the useful ones
        return ComfyUIDied(what, returncode=self.returncode(), last_lines=self.last_lines)

    async def wait_exit(self) -> int | None:
        """Return once the process has exited (its status)."""
        # Polling, not an Event: the process belongs to no event loop (it may predate the SDK's), and poll() is
        # a cheap non-blocking waitpid.
        while self.alive():  # noqa: ASYNC110
            await asyncio.sleep(_POLL_S)
        return self.returncode()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(5)
