"""Pipelining benchmark: ``.venv/bin/python -m tests.bench.bench_pipeline [--jobs 20] [--concurrency 1,2]``.
Not a pytest test: it prints figures beside their targets and exits 0 whether or not a target was met.

N jobs are sent at once to the RunPod emulator; ``python -m handlers.worker`` (the real runpod SDK job loop) takes
them with ``RELAY_MAX_CONCURRENT_JOBS`` set to each value in ``--concurrency``. ComfyUI is the emulator's CLI in its
own process (``--step-delay``: 20 sampler steps of 50 ms, so ~1 s of sampling per job, plus the CPU stand-ins'
decode and PNG encoding); each job saves three 1024x1024 PNGs, uploaded to moto's S3 (in this process, threaded).
From ComfyUI's own history timestamps (``execution_start``/``execution_success``, ms):

* busy fraction = sum of prompt execution times / (last prompt's end - first prompt's start);
* idle gap = next prompt's start - previous prompt's end, p50/p95/max over consecutive prompts.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from moto.server import ThreadedMotoServer

from handlers.worker.comfy import prompt_id_for
from tests.local.runpod.conftest import Emulator, serve_emulator
from tests.worker._relay import free_port, make_models, sampler_graph, spawn_relay_worker, worker_env
from tests.worker.conftest import make_s3_client

BUCKET = "bench-pipeline"
TARGETS = {"gap_p50_ms": 5.0, "busy": 0.98}


def _graph(seed: int) -> dict[str, Any]:
    graph = sampler_graph(steps=20, size=1024, seed=seed, prefix=f"pipe/{seed}")
    graph["5"]["inputs"]["batch_size"] = 3
    return graph


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _comfy(port: int, root: Path, step_delay: float) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "handlers.cli", "emulate", "comfyui", "--port", str(port)]
    argv += ["--data-dir", str(root / "data"), "--models", str(make_models(root / "models"))]
    argv += ["--step-delay", str(step_delay)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/system_stats", timeout=1)
            return process
        except httpx.HTTPError:
            if process.poll() is not None:
                raise SystemExit(f"the ComfyUI emulator exited with {process.returncode}") from None
            time.sleep(0.05)
    raise SystemExit("the ComfyUI emulator did not start")


def _spans(comfy_url: str, job_ids: list[str]) -> list[tuple[int, int]]:
    spans = []
    for job_id in job_ids:
        prompt_id = prompt_id_for(job_id)
        entry = httpx.get(f"{comfy_url}/history/{prompt_id}").json()[prompt_id]
        stamps = {name: data["timestamp"] for name, data in entry["status"]["messages"]}
        spans.append((stamps["execution_start"], stamps["execution_success"]))
    return sorted(spans)


def _run(
    runpod: Emulator, comfy_url: str, moto: str, root: Path, *, concurrency: int, jobs: int, tag: str
) -> dict[str, float]:
    workdir = root / f"worker-{tag}"
    workdir.mkdir()
    data = root / "comfy" / "data"
    env = worker_env(
        runpod,
        workdir,
        comfy_url,
        moto,
        BUCKET,
        COMFYUI_OUTPUT_DIR=str(data / "output"),
        COMFYUI_INPUT_DIR=str(data / "input"),
        RELAY_MAX_CONCURRENT_JOBS=str(concurrency),
        RELAY_PROGRESS_INTERVAL_MS="500",
    )
    with spawn_relay_worker(runpod, workdir, env):
        # One job first: the worker's catalogue, connections and ComfyUI's loaders warm up (not counted).
        warm = runpod.run({"input": {"workflow": _graph(seed=1), "job_id": f"warm-{tag}"}})
        runpod.wait_status(warm, "COMPLETED", "FAILED", timeout=120)
        job_ids = [f"pipe-{tag}-{i}" for i in range(jobs)]
        began = time.monotonic()
        runpod_ids = [
            runpod.run({"input": {"workflow": _graph(seed=1000 + i), "job_id": job_id}})
            for i, job_id in enumerate(job_ids)
        ]
        failed = [
            s
            for rid in runpod_ids
            if (s := runpod.wait_status(rid, "COMPLETED", "FAILED", timeout=600))["status"] != "COMPLETED"
        ]
        wall = time.monotonic() - began
    if failed:
        raise SystemExit(f"{len(failed)} jobs failed: {failed[0]}")
    spans = _spans(comfy_url, job_ids)
    busy = sum(end - start for start, end in spans) / (spans[-1][1] - spans[0][0])
    gaps = [float(b[0] - a[1]) for a, b in itertools.pairwise(spans)]
    return {
        "busy": busy,
        "gap_p50_ms": _pct(gaps, 0.5),
        "gap_p95_ms": _pct(gaps, 0.95),
        "gap_max_ms": max(gaps),
        "exec_mean_ms": statistics.fmean(end - start for start, end in spans),
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--concurrency", default="1,2", help="RELAY_MAX_CONCURRENT_JOBS values to compare")
    parser.add_argument("--step-delay", type=float, default=0.05, help="seconds per sampler step (20 steps)")
    args = parser.parse_args()
    levels = [int(v) for v in args.concurrency.split(",")]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    comfy: subprocess.Popen[bytes] | None = None
    try:
        host, moto_port = moto.get_host_and_port()
        moto_url = f"http://{host}:{moto_port}"
        make_s3_client(moto_url).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp, serve_emulator() as runpod:
            root = Path(tmp)
            port = free_port()
            comfy = _comfy(port, root / "comfy", args.step_delay)
            comfy_url = f"http://127.0.0.1:{port}"
            print(f"{args.jobs} jobs x 3 PNGs 1024x1024, 20 steps x {args.step_delay * 1000:.0f} ms, real SDK loop")
            for level in levels:
                figures = _run(runpod, comfy_url, moto_url, root, concurrency=level, jobs=args.jobs, tag=f"c{level}")
                print(
                    f"RELAY_MAX_CONCURRENT_JOBS={level}: busy {figures['busy']:.3f} (target > {TARGETS['busy']}), "
                    f"idle gap p50 {figures['gap_p50_ms']:.0f} ms (target < {TARGETS['gap_p50_ms']:.0f}) "
                    f"p95 {figures['gap_p95_ms']:.0f} ms max {figures['gap_max_ms']:.0f} ms; "
                    f"execution {figures['exec_mean_ms']:.0f} ms/job; wall {figures['wall_s']:.1f} s"
                )
    finally:
        if comfy is not None:
            comfy.terminate()
            comfy.wait(10)
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
