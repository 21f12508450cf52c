"""``python -m handlers.worker``: check the configuration, start ComfyUI if the worker supervises it, then hand
control to ``runpod.serverless.start`` (the SDK's own job loop)."""

from __future__ import annotations

import atexit
import logging
import os
import sys

from handlers.common import ConfigError
from handlers.worker._config import WorkerConfig
from handlers.worker._core import WorkerRuntime
from handlers.worker._handler import handler, set_runtime, stream_handler
from handlers.worker._logging import configure_logging, route_sdk_logs, sdk_log_level
from handlers.worker._startup import without_cpu_probe
from handlers.worker._supervisor import ComfyProcess

logger = logging.getLogger("handlers.worker")


def main() -> int:
    try:
        config = WorkerConfig.from_env()
    except ConfigError as exc:
        print(f"comfy-relay worker: {exc}", file=sys.stderr)
        return 2
    configure_logging()
    process: ComfyProcess | None = None
    if config.comfyui_command is not None:
        process = ComfyProcess(config.comfyui_command)
        # Started before the SDK is imported (~2 s): ComfyUI boots meanwhile. Readiness is awaited by the first
        # job, which fails fast with ComfyUI's last lines if it died.
        process.start()
        atexit.register(process.stop, config.stop_timeout_s)
    runtime = WorkerRuntime(config, process=process)
    set_runtime(runtime)
    logger.info(
        "worker starting",
        extra={
            "comfyui_url": config.comfyui_url,
            "supervised": config.supervised,
            "stream": config.stream,
            "max_concurrent_jobs": config.max_concurrent_jobs,
        },
    )
    with without_cpu_probe():
        import runpod  # noqa: PLC0415 (heavy import: only in the worker process)
    from runpod.serverless.modules.rp_logger import RunPodLogger  # noqa: PLC0415

    route_sdk_logs(RunPodLogger(), sdk_log_level(os.environ))

    # Up to RELAY_MAX_CONCURRENT_JOBS jobs at once (one while an exclusive job is held): the next job is staged and
    # its prompt queued in ComfyUI while the current one runs and uploads.
    concurrency = runtime.gate.concurrency
    if config.stream:
        runpod.serverless.start(
            {"handler": stream_handler, "return_aggregate_stream": True, "concurrency_modifier": concurrency}
        )
    else:
        runpod.serverless.start({"handler": handler, "concurrency_modifier": concurrency})
    return 0


if __name__ == "__main__":
    sys.exit(main())
