"""Staging benchmark: ``.venv/bin/python -m tests.bench.bench_staging [--runs 50]``. Not a pytest test: figures only.

An inline base64 PNG of ~786 KB (the size in issue 15, where worker-comfyui spends ~12 ms) is validated as a job
input and staged into a job folder (decode once, hash while writing, no re-encoding), p50/p95 over ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from handlers.contract import JobInput
from handlers.worker import MediaFetcher, MediaLimits
from handlers.worker._staging import InputStager


def _png(target: int) -> bytes:
    rng = random.Random(7)
    side = int((target / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _stage(encoded: str, runs: int) -> tuple[list[float], list[float]]:
    job: dict[str, Any] = {
        "workflow": {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}},
        "media": [{"name": "a.png", "base64": encoded}],
    }
    fetcher = MediaFetcher(MediaLimits())
    validate: list[float] = []
    stage: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-staging-") as tmp:
        for i in range(runs):
            began = time.perf_counter()
            media = JobInput.model_validate(job).media
            validated = time.perf_counter()
            await InputStager(Path(tmp), f"job-{i}", fetcher).stage_all(media)
            validate.append((validated - began) * 1000)
            stage.append((time.perf_counter() - validated) * 1000)
    return validate, stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    data = _png(786 * 1024)
    validate, stage = asyncio.run(_stage(base64.b64encode(data).decode(), args.runs))
    print(f"inline base64 PNG of {len(data) / 1024:.0f} KB, {args.runs} runs")
    print(f"JobInput validation: p50 {_pct(validate, 0.5):.1f} ms, p95 {_pct(validate, 0.95):.1f} ms")
    print(f"staging (decode, sniff, hash, write): p50 {_pct(stage, 0.5):.1f} ms, p95 {_pct(stage, 0.95):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
