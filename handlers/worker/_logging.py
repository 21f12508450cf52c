"""The worker's logs: the shared JSON format and redaction (:mod:`handlers.common`), wired to the root logger.

The runpod SDK does not use ``logging``: its ``RunPodLogger`` prints its own lines, at DEBUG by default, job inputs
and outputs (presigned URLs with their signatures) included. :func:`route_sdk_logs` sends them through the same
path (logger ``runpod``: redacted, JSON) and keeps only its warnings and errors - the job loop's own DEBUG and INFO
lines are most of a worker's log and say nothing the worker's lines do not.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import IO, Any, Final

from handlers.common import JsonFormatter, RedactingFilter

__all__ = ["configure_logging", "route_sdk_logs", "sdk_log_level"]

#: The SDK's level names, as logging levels (``TIP`` is its advertising: dropped with the rest of the noise).
_SDK_LEVELS: Final = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}


def route_sdk_logs(sdk_logger: Any, level: int = logging.WARNING) -> None:
    """Make the SDK's ``RunPodLogger`` (a singleton every SDK module shares) log through ``logging`` instead of
    printing: logger ``runpod``, records below ``level`` dropped. Pass ``RunPodLogger()``."""
    target = logging.getLogger("runpod")

    def log(message: object, message_level: str = "INFO", job_id: str | None = None) -> None:
        record_level = _SDK_LEVELS.get(message_level, logging.INFO)
        if message_level == "TIP" or record_level < level:
            return
        extra = {"runpod_job_id": job_id} if job_id else {}
        target.log(record_level, "%s", message, extra=extra)

    # The instance attribute wins over the class's method for every module holding the singleton.
    sdk_logger.log = log


def sdk_log_level(environ: Mapping[str, str]) -> int:
    """The SDK's level: ``RUNPOD_LOG_LEVEL`` when ops set one (lines still redacted), else warnings."""
    return _SDK_LEVELS.get(environ.get("RUNPOD_LOG_LEVEL", "").strip().upper(), logging.WARNING)


def configure_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as redacted JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h.formatter, JsonFormatter)]
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO: on a worker that polls ComfyUI that is most of the log, and says nothing
    # a failure would not say better.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    return handler
