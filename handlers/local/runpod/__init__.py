"""RunPod platform emulator: the public ``/v2/{endpoint_id}/`` API and the worker protocol the ``runpod`` SDK speaks,
served by one aiohttp application, so the SDK's own worker loop runs against it unchanged.

Choices where RunPod documents nothing (see the report in the change that added this package):

- A worker is *lost* when nothing (ping, job-take, job-stop, job-done) has been heard from it for
  ``EmulatorConfig.worker_lost_after_s``, or when it asks for work with ``job_in_progress=0`` while we think it
  runs a job. Its jobs go back to the head of the queue once (``max_requeues``; counted as ``retried`` in
  ``/health``), then FAIL with ``worker lost``.
- A TTL that runs out removes the job (``/status`` 404), as documented; an ended job is not subject to its TTL,
  only to the retention time. A retried job's TTL counts from the retry.
- Oversized bodies get 400 (the code RunPod gave an oversized job-done; its docs list no 413).
- A late job-done (job already cancelled, timed out or requeued) gets 200 and changes nothing.
- ``workerId`` appears in ``/status`` once a worker took the job; the webhook body is the status object plus the
  job's ``input`` and ``webhook``, as in the cloud payload quoted in runpod/runpod-python#409.
"""

from __future__ import annotations

from handlers.local.runpod._config import MIB, EmulatorConfig
from handlers.local.runpod._env import export_lines, worker_environment
from handlers.local.runpod._http import PLATFORM
from handlers.local.runpod._jobs import (
    TERMINAL,
    InvalidRequestError,
    Job,
    JobStatus,
    JobStore,
    Policy,
    UnknownJobError,
    WorkerInfo,
)
from handlers.local.runpod._platform import Faults, Platform
from handlers.local.runpod._server import create_app
from handlers.local.runpod._webhooks import Delivery, WebhookSender

__all__ = [
    "MIB",
    "PLATFORM",
    "TERMINAL",
    "Delivery",
    "EmulatorConfig",
    "Faults",
    "InvalidRequestError",
    "Job",
    "JobStatus",
    "JobStore",
    "Platform",
    "Policy",
    "UnknownJobError",
    "WebhookSender",
    "WorkerInfo",
    "create_app",
    "export_lines",
    "worker_environment",
]
