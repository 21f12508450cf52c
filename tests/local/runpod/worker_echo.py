"""A real ``runpod.serverless.start`` worker with an async handler, run as a subprocess by the tests.

``job["input"]["mode"]`` picks the behaviour. Markers go to ``$RELAY_MARKERS``: ``<id>.job`` (the job dict the
handler got), ``<id>.cancelled`` (the handler saw CancelledError); a test releases a waiting job by creating
``<id>.release``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import runpod

MARKERS = Path(os.environ["RELAY_MARKERS"])


async def _released(job_id: str) -> None:
    # Polling a file is how the test process reaches into the handler; 60 s bounds a forgotten release.
    for _ in range(3000):
        if (MARKERS / f"{job_id}.release").exists():
            return
        await asyncio.sleep(0.02)


async def handler(job: dict[str, Any]) -> Any:
    job_id = job["id"]
    (MARKERS / f"{job_id}.job").write_text(json.dumps(job))
    mode = job["input"].get("mode", "echo")
    try:
        if mode == "progress":
            runpod.serverless.progress_update(job, {"pct": 50})
            await _released(job_id)
            return {"done": True}
        if mode == "block":
            await asyncio.sleep(3600)
        if mode == "raise":
            raise ValueError("boom from handler")
        if mode == "error":
            return {"error": "custom failure", "detail": 1}
        if mode == "fail_once":
            first = MARKERS / f"{job_id}.failed-once"
            if not first.exists():
                first.write_text("1")
                raise RuntimeError("first attempt fails")
            return {"attempt": 2}
        return {"echo": job["input"]}
    except asyncio.CancelledError:
        (MARKERS / f"{job_id}.cancelled").write_text("1")
        raise


if __name__ == "__main__":
    # Concurrency 4, so a blocked job does not hold up the others (and the batch job-take path is used).
    runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda current: 4})
