"""A real streaming worker (async generator, ``return_aggregate_stream``, concurrency 1) against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.local.runpod.conftest import (
    Emulator,
    WorkerProcess,
    spawn_worker,
    wait_for,
)


@pytest.fixture(scope="module")
def worker(runpod_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    with spawn_worker(runpod_emulator, "worker_stream", tmp_path_factory.mktemp("worker_stream")) as process:
        yield process


@pytest.fixture
def emulator(runpod_emulator: Emulator, worker: WorkerProcess) -> Emulator:
    return runpod_emulator


def test_stream_hands_out_each_chunk_once(emulator: Emulator, worker: WorkerProcess) -> None:
    job_id = emulator.run({"input": {"chunks": 3, "pause_after": 2}})
    seen: list[Any] = []

    def two_chunks() -> bool:
        body = emulator.client.get(f"/stream/{job_id}").json()
        assert body["status"] in ("IN_QUEUE", "IN_PROGRESS"), body
        seen.extend(item["output"] for item in body["stream"])
        return len(seen) >= 2

    wait_for(two_chunks, 30, "two streamed chunks")
    assert seen == [{"chunk": 0}, {"chunk": 1}]
    assert emulator.client.get(f"/stream/{job_id}").json() == {"status": "IN_PROGRESS", "stream": []}
    worker.release(job_id)
    final = emulator.wait_status(job_id, "COMPLETED", "FAILED")
    assert final["output"] == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]  # the aggregate of every chunk
    assert emulator.client.get(f"/stream/{job_id}").json() == {
        "status": "COMPLETED",
        "stream": [{"output": {"chunk": 2}}],
    }


def test_runsync_of_a_streaming_handler(emulator: Emulator) -> None:
    body = emulator.client.post("/runsync", json={"input": {"chunks": 2}}).json()
    assert (body["status"], body["output"]) == ("COMPLETED", [{"chunk": 0}, {"chunk": 1}])
