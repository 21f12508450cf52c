"""Fixtures for the RunPod platform emulator: a served emulator, an API client, real SDK worker processes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from handlers.local._serving import ServerThread
from handlers.local.runpod import PLATFORM, EmulatorConfig, Platform, create_app, worker_environment

T = TypeVar("T")
HERE = Path(__file__).resolve().parent

# Short waits and intervals so the suite stays quick; RunPod's real values are the EmulatorConfig defaults.
FAST_CONFIG = EmulatorConfig(
    endpoint_id="ep-test",
    api_key="rpa_TESTKEY",
    worker_key="worker-test-key",
    job_take_wait_s=1.0,
    job_stop_wait_s=1.0,
    webhook_retry_interval_s=0.05,
    webhook_timeout_s=5.0,
    runsync_wait_min_ms=100,
    execution_timeout_min_ms=100,
    ttl_min_ms=100,
    sweep_interval_s=0.05,
)


def wait_for(check: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@dataclasses.dataclass
class Emulator:
    """A served emulator. ``client`` talks to ``/v2/{endpoint_id}/`` with the API key."""

    server: ServerThread
    config: EmulatorConfig
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_base(self) -> str:
        """What a caller sets as RunPod's base URL (``RUNPOD_API_BASE``)."""
        return f"{self.server.url}/v2"

    @property
    def platform(self) -> Platform:
        assert self.server.app is not None
        return self.server.app[PLATFORM]

    def worker_env(self, **overrides: Any) -> dict[str, str]:
        return worker_environment(self.url, self.config, **overrides)

    def run(self, body: dict[str, Any]) -> str:
        response = self.client.post("/run", json=body)
        assert response.status_code == 200, response.text
        job_id: str = response.json()["id"]
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/status/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(
            lambda: body if (body := self.status(job_id))["status"] in statuses else None,
            timeout,
            f"job {job_id} to reach {statuses}",
        )

    def admin(self, path: str) -> Any:
        return httpx.get(f"{self.url}/_emulator/{path}").json()


@contextlib.contextmanager
def serve_emulator(config: EmulatorConfig = FAST_CONFIG) -> Iterator[Emulator]:
    with ServerThread(lambda: create_app(config)) as server:
        headers = {"Authorization": f"Bearer {config.api_key}"}
        with httpx.Client(base_url=f"{server.url}/v2/{config.endpoint_id}", headers=headers, timeout=30) as client:
            yield Emulator(server, config, client)


@pytest.fixture(scope="module")
def runpod_emulator() -> Iterator[Emulator]:
    """A RunPod emulator served on 127.0.0.1 for the whole test module (fast test timings)."""
    with serve_emulator() as emulator:
        yield emulator


@dataclasses.dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    markers: Path
    log: Path

    def marker(self, job_id: str, kind: str) -> Path:
        return self.markers / f"{job_id}.{kind}"

    def release(self, job_id: str) -> None:
        self.marker(job_id, "release").write_text("1")

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def spawn_worker(emulator: Emulator, module: str, workdir: Path, **env_overrides: Any) -> Iterator[WorkerProcess]:
    """Run ``tests/local/runpod/<module>.py`` as a real SDK worker against ``emulator``, yield it once it has
    asked for a job, and always kill it after.

    The worker gets its own session (process group) so its heartbeat child process dies with it.
    """
    markers = workdir / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"  # keeps a developer's ~/.runpod credentials (which the SDK prefers) out of the test
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        **emulator.worker_env(ping_interval_ms=1000, **env_overrides),
        "HOME": str(home),
        "RELAY_MARKERS": str(markers),
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
        "RUNPOD_SKIP_GPU_CHECK": "true",
        "PYTHONUNBUFFERED": "1",
    }
    log = workdir / f"{module}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(HERE / f"{module}.py")],
            env=env,
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(process, markers, log)
    try:
        _wait_worker_ready(emulator, worker)
        yield worker
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _wait_worker_ready(emulator: Emulator, worker: WorkerProcess, timeout: float = 60.0) -> None:
    """The worker has asked for a job (it is in the emulator's worker list)."""

    def ready() -> bool:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.output()}")
        return bool(emulator.admin("workers")["workers"])

    wait_for(ready, timeout, "the worker to connect")
