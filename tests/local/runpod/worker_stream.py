"""A real ``runpod.serverless.start`` worker with an async-generator handler (streaming), run as a subprocess.

It yields ``input.chunks`` chunks; after ``input.pause_after`` of them it waits for ``<id>.release`` in
``$RELAY_MARKERS``, so a test can read the stream while the job is still running.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import runpod

MARKERS = Path(os.environ["RELAY_MARKERS"])


async def handler(job: dict[str, Any]) -> AsyncIterator[dict[str, int]]:
    job_input = job["input"]
    for index in range(int(job_input.get("chunks", 3))):
        if index == job_input.get("pause_after"):
            for _ in range(3000):
                if (MARKERS / f"{job['id']}.release").exists():
                    break
                await asyncio.sleep(0.02)
        yield {"chunk": index}


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
