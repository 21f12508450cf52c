"""Structured JSON log lines keyed by job id (stdlib logging). Secrets never reach a log call: settings hold them as
``SecretStr`` and tokens are compared, never logged."""

from __future__ import annotations

import json
import logging
from typing import Any, Final

__all__ = ["LOGGER_NAME", "JsonFormatter", "configure_logging", "log_event"]

LOGGER_NAME: Final = "comfy_relay.dispatch"
# Attributes every LogRecord has; anything else came in through ``extra=`` and belongs in the JSON line.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "time_ms": int(record.created * 1000),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, sort_keys=True)


def configure_logging(level: int = logging.INFO) -> None:
    """Give the dispatch logger one JSON handler (idempotent; called when the Lambda's runtime is built)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


def log_event(level: int, message: str, job_id: str | None = None, **fields: Any) -> None:
    logging.getLogger(LOGGER_NAME).log(level, message, extra={"job_id": job_id, **fields} if job_id else fields)
