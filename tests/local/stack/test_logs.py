"""The local stack's logs stay readable and bounded: each run writes its own folder, ``logs/latest`` points at the
newest, and only the last few runs are kept."""

from __future__ import annotations

import os
from pathlib import Path

from handlers.local.stack import LocalStack, StackConfig


def test_each_run_gets_its_own_folder_and_old_runs_go(tmp_path: Path) -> None:
    made = []
    for n in range(4):
        config = StackConfig(state_dir=tmp_path, run_name=f"run-{n}", keep_runs=2)
        LocalStack(config)._prepare_logs()
        (config.log_dir / "worker-1.log").write_text(f"run {n}\n")
        os.utime(config.log_dir, (1_000_000 + n, 1_000_000 + n))  # mtime order = run order, whatever the clock
        made.append(config)
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir() if not p.is_symlink()) == ["run-2", "run-3"]
    assert (logs / "latest").resolve() == made[-1].log_dir.resolve()
    assert (logs / "latest" / "worker-1.log").read_text() == "run 3\n"


def test_the_worker_runs_quietly(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig(state_dir=tmp_path))
    env = stack._worker_env(
        {"runpod": "http://127.0.0.1:1", "moto": "http://127.0.0.1:2"}, "http://127.0.0.1:3", {"RELAY_S3_BUCKET": "b"}
    )
    assert env["RUNPOD_LOG_LEVEL"] == "INFO"  # the SDK's per-poll DEBUG lines stay out of the worker's log
    assert env["RUNPOD_SKIP_AUTO_SYSTEM_CHECKS"] == "true"  # no probe of 8.8.8.8 from a local stack
    assert "RELAY_STREAM" not in env  # result mode, as a default deployment
    streaming = LocalStack(StackConfig(state_dir=tmp_path, stream=True))
    assert (
        streaming._worker_env(
            {"runpod": "http://127.0.0.1:1", "moto": "http://127.0.0.1:2"}, "http://x:3", {"RELAY_S3_BUCKET": "b"}
        )["RELAY_STREAM"]
        == "1"
    )
