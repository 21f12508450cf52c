"""Dispatch's logs: the shared JSON format and redaction (:mod:`handlers.common`) on the ``comfy_relay.dispatch``
logger, keyed by job id. Settings hold secrets as ``SecretStr`` and the runtime registers their values for redaction,
so a secret that reaches a log call anyway is printed as ``<redacted>``."""

from __future__ import annotations

import logging
from typing import Any, Final

from handlers.common import JsonFormatter, RedactingFilter

__all__ = ["LOGGER_NAME", "configure_logging", "log_event"]

LOGGER_NAME: Final = "comfy_relay.dispatch"


def configure_logging(level: int = logging.INFO) -> None:
    """Give the dispatch logger one JSON handler (idempotent; called when the Lambda's runtime is built)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RedactingFilter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


def log_event(level: int, message: str, job_id: str | None = None, **fields: Any) -> None:
    logging.getLogger(LOGGER_NAME).log(level, message, extra={"job_id": job_id, **fields} if job_id else fields)
