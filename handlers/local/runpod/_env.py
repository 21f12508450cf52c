"""The environment a ``runpod`` SDK worker needs to talk to the emulator."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from urllib.parse import quote

from handlers.local.runpod._config import EmulatorConfig

__all__ = ["export_lines", "worker_environment"]


def worker_environment(
    url: str,
    config: EmulatorConfig | None = None,
    *,
    pod_id: str = "local-worker-1",
    gpu: str = "LOCAL",
    ping_interval_ms: int = 10_000,
) -> dict[str, str]:
    """Variables for a worker process, given the emulator's base URL (``http://host:port``).

    ``$ID`` and ``$RUNPOD_POD_ID`` stay literal: the SDK substitutes them. Every URL carries a query string
    because the SDK appends ``&job_in_progress=``, ``&isStream=`` and ``&batch_size=``. The SDK reads the ping
    interval in whole seconds (``ms // 1000``), so it must be at least 1000.
    """
    if ping_interval_ms < 1000:
        raise ValueError("ping_interval_ms below 1000 makes the SDK ping in a busy loop (it truncates to seconds)")
    config = config or EmulatorConfig()
    base = f"{url.rstrip('/')}/v2/{config.endpoint_id}"
    query = f"gpu={quote(gpu)}"
    return {
        "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?{query}",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID?{query}",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID/$ID?{query}",
        "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID?{query}",
        "RUNPOD_POD_ID": pod_id,
        "RUNPOD_AI_API_KEY": config.worker_key,
        "RUNPOD_ENDPOINT_ID": config.endpoint_id,
        "RUNPOD_PING_INTERVAL": str(ping_interval_ms),
    }


def export_lines(env: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines, quoted so a shell keeps ``$ID`` literal."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
