"""Settings of the RunPod platform emulator: every limit finite, every delay shortenable for tests."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIB", "EmulatorConfig"]

MIB = 1024 * 1024
_MINUTE_S = 60.0
_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, kw_only=True)
class EmulatorConfig:
    """What one emulated endpoint looks like. Defaults are RunPod's documented values where it documents one.

    Times ending in ``_s`` are seconds, ``_ms`` milliseconds (the unit RunPod's API uses for policies).
    """

    endpoint_id: str = "local-endpoint"
    api_key: str = "local-api-key"
    worker_key: str = "local-worker-key"
    # Results stay readable this long after the job ends (RunPod: 30 min for /run, 1 min for /runsync).
    run_retention_s: float = 30 * _MINUTE_S
    runsync_retention_s: float = _MINUTE_S
    # RunPod: "retries up to 2 more times with a 10-second delay".
    webhook_attempts: int = 3
    webhook_retry_interval_s: float = 10.0
    webhook_timeout_s: float = 10.0
    # How long job-take and job-stop hold a request open when there is nothing to hand out. The SDK gives up
    # on a poll after 90 s, so anything well below that is safe; short values make worker shutdown quick.
    job_take_wait_s: float = 5.0
    job_stop_wait_s: float = 5.0
    # /runsync: default and bounds of ?wait= in ms (RunPod: 90 s default, 1 s to 300 s).
    runsync_wait_default_ms: int = 90_000
    runsync_wait_min_ms: int = 1_000
    runsync_wait_max_ms: int = 300_000
    # Policy defaults and bounds (RunPod: executionTimeout 10 min, > 5 s; ttl 24 h, >= 10 s; both <= 7 days).
    execution_timeout_default_ms: int = 600_000
    execution_timeout_min_ms: int = 5_000
    ttl_default_ms: int = _DAY_MS
    ttl_min_ms: int = 10_000
    policy_max_ms: int = 7 * _DAY_MS
    # Request size limits (RunPod: 10 MB /run, 20 MB /runsync); a job-done body above the result limit gets 400,
    # as RunPod answered a ~26 MB base64 image (runpod-workers/worker-comfyui#129).
    max_run_bytes: int = 10 * MIB
    max_runsync_bytes: int = 20 * MIB
    max_result_bytes: int = 20 * MIB
    # A worker not heard from (ping, job-take, job-stop, job-done) for this long is lost: its jobs are requeued
    # up to ``max_requeues`` times, then failed. RunPod does not document this; see the package docstring.
    worker_lost_after_s: float = 60.0
    max_requeues: int = 1
    # How often timeouts, TTLs, retention and lost workers are checked.
    sweep_interval_s: float = 0.1
    # Suffix of job ids: RunPod ids look like ``<uuid4>-u1`` (/run) and ``sync-<uuid4>-e1`` (/runsync).
    region_suffix: str = "u1"

    def __post_init__(self) -> None:
        if not self.endpoint_id or "/" in self.endpoint_id:
            raise ValueError(f"endpoint_id must be a non-empty path segment, got {self.endpoint_id!r}")
        if not self.api_key or not self.worker_key:
            raise ValueError("api_key and worker_key must not be empty")
        if self.webhook_attempts < 1:
            raise ValueError("webhook_attempts must be at least 1")
        for name in (
            "run_retention_s",
            "runsync_retention_s",
            "webhook_timeout_s",
            "job_take_wait_s",
            "job_stop_wait_s",
            "worker_lost_after_s",
            "sweep_interval_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.webhook_retry_interval_s < 0 or self.max_requeues < 0:
            raise ValueError("webhook_retry_interval_s and max_requeues must not be negative")
        if not 0 < self.runsync_wait_min_ms <= self.runsync_wait_default_ms <= self.runsync_wait_max_ms:
            raise ValueError("runsync wait bounds must satisfy 0 < min <= default <= max")
