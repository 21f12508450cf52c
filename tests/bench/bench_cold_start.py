"""Cold-start benchmark: ``.venv/bin/python -m tests.bench.bench_cold_start [--runs 5]``. Not a pytest test: it
prints figures and exits 0.

* import time of the worker's entry point (``handlers.worker.__main__``, without ``runpod``) and of ``runpod``
  itself, each in a fresh interpreter, median of ``--runs``;
* worker process start -> ready: ``python -m handlers.worker`` with the real SDK loop against the RunPod emulator,
  supervising the ComfyUI emulator (``COMFYUI_COMMAND``) with a warmup workflow; "ready" is the worker's own
  ``comfyui ready`` log line (ComfyUI answering, warmup done, ``/object_info`` catalogue loaded), measured
  from the kernel's process start time;
  and spawn -> first job completed, from outside.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moto.server import ThreadedMotoServer

from tests.local.runpod.conftest import serve_emulator
from tests.worker._relay import free_port, make_models, mixed_graph, spawn_relay_worker, worker_env
from tests.worker.conftest import make_s3_client
from tests.worker.test_core_supervised import emulator_command

BUCKET = "bench-cold"


def _import_ms(module: str, runs: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
    samples = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]
    return statistics.median(samples)


def _ready_ms(log: str) -> int | None:
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("message") == "comfyui ready":
                age: int | None = entry.get("process_age_ms")
                return age
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    print(f"import handlers.worker.__main__: {_import_ms('handlers.worker.__main__', args.runs):.0f} ms (median)")
    print(f"import runpod: {_import_ms('runpod', args.runs):.0f} ms (median)")
    shimmed = "handlers.worker._startup as s\nwith s.without_cpu_probe(): import runpod"
    print(f"import runpod as the worker does (no CPU probe): {_import_ms(shimmed, args.runs):.0f} ms (median)")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        moto_url = f"http://{host}:{port}"
        make_s3_client(moto_url).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp, serve_emulator() as runpod:
            root = Path(tmp)
            comfy_port = free_port()
            data = root / "data"
            warmup = root / "warmup.json"
            warmup.write_text(json.dumps(mixed_graph(prefix="warmup")))
            command = " ".join(emulator_command(comfy_port, data, make_models(root / "models")))
            env = worker_env(
                runpod,
                root,
                f"http://127.0.0.1:{comfy_port}",
                moto_url,
                BUCKET,
                COMFYUI_COMMAND=command,
                COMFYUI_OUTPUT_DIR=str(data / "output"),
                COMFYUI_INPUT_DIR=str(data / "input"),
                RELAY_WARMUP_WORKFLOW=str(warmup),
                RUNPOD_LOG_LEVEL="WARN",
            )
            began = time.monotonic()
            with spawn_relay_worker(runpod, root, env) as worker:
                job = runpod.run({"input": {"workflow": mixed_graph(prefix="first")}})
                status = runpod.wait_status(job, "COMPLETED", "FAILED", timeout=120)
                first_job = time.monotonic() - began
                ready = _ready_ms(worker.output())
            if status["status"] != "COMPLETED":
                raise SystemExit(f"the first job failed: {status}")
            print(f"worker process start -> ready (ComfyUI answering, warmup done, catalogue loaded): {ready} ms")
            print(f"spawn -> first job completed (incl. ComfyUI boot and warmup): {first_job * 1000:.0f} ms")
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
