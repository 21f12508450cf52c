"""Lambda package figures (a script, never a test): ``.venv/bin/python -m tests.bench.bench_lambda_package``.

Builds the package (``comfy-relay deploy package``), prints its size, and the cold start of each handler from it:
a fresh interpreter with only the unpacked package on sys.path (no site-packages, no bytecode written, as in
/var/task) importing ``handlers.dispatch`` and building the runtime on the first call; median of ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handlers.deploy._package import build_artifact
from tests.deploy.test_package import ENV, PROBE


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        artifact = build_artifact(Path(scratch) / "dist", keep_tree=Path(scratch) / "tree")
        print(f"build: {time.perf_counter() - started:.1f} s")
        print(f"zip: {artifact.size_bytes / 1e6:.1f} MB, unpacked {artifact.unpacked_bytes / 1e6:.1f} MB, "
              f"{artifact.files} files")  # fmt: skip
        for handler in ("on_queue", "on_webhook", "reconcile"):
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(Path(scratch) / "tree"), handler],
                               env=ENV, check=True, capture_output=True)  # fmt: skip
                times.append(time.perf_counter() - started)
            print(json.dumps({"handler": handler, "cold_start_median_s": round(statistics.median(times), 3),
                              "min_s": round(min(times), 3), "runs": args.runs}))  # fmt: skip


if __name__ == "__main__":
    main()
