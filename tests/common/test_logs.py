"""Worker and dispatch write one log schema, and no secret reaches either."""

from __future__ import annotations

import io
import json
import logging
import re

from handlers.common import LOG_KEYS, job_context, register_secret
from handlers.dispatch._logging import LOGGER_NAME, log_event
from handlers.dispatch._logging import configure_logging as configure_dispatch_logging
from handlers.worker import configure_logging as configure_worker_logging

_SECRET = "sk-live-0123456789abcdef"
_PRESIGNED = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAABCDEFGHIJKLMNOP%2F&X-Amz-Signature=deadbeef00"
_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_both_halves_write_one_schema_and_redact_secrets() -> None:
    register_secret(_SECRET)
    worker_out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    handler = configure_worker_logging(worker_out)
    dispatch = logging.getLogger(LOGGER_NAME)
    dispatch_saved = (list(dispatch.handlers), dispatch.propagate, dispatch.level)
    dispatch.handlers = []
    configure_dispatch_logging()
    dispatch_out = io.StringIO()
    dispatch.handlers[0].setStream(dispatch_out)  # type: ignore[attr-defined]
    try:
        with job_context("job-1", "prompt-9"):
            logging.getLogger("handlers.worker").info("fetching %s with key %s", _PRESIGNED, _SECRET)
        log_event(
            logging.WARNING,
            f"caller webhook refused Authorization: Bearer {_SECRET}",
            "job-1",
            reason=f"api_key={_SECRET}",
            api_key=_SECRET,
            headers={"Authorization": f"Bearer {_SECRET}"},
            attempt=2,
        )
    finally:
        root.handlers, root.level = saved
        handler.close()
        dispatch.handlers, dispatch.propagate, dispatch.level = dispatch_saved
    (worker,) = _lines(worker_out)
    (line,) = _lines(dispatch_out)
    for entry, logger in ((worker, "handlers.worker"), (line, LOGGER_NAME)):
        assert set(LOG_KEYS) - {"exception", "prompt_id"} <= set(entry), entry
        assert _TS.match(str(entry["ts"])), entry["ts"]
        assert entry["logger"] == logger and entry["job_id"] == "job-1"
        assert "time_ms" not in entry
    assert worker["prompt_id"] == "prompt-9" and worker["level"] == "INFO"
    assert line["level"] == "WARNING" and line["attempt"] == 2  # plain extras stay typed
    text = worker_out.getvalue() + dispatch_out.getvalue()
    for leaked in (_SECRET, "deadbeef00", "AKIAABCDEFGHIJKLMNOP"):
        assert leaked not in text, leaked
    assert line["api_key"] == "<redacted>" and line["headers"] == {"Authorization": "<redacted>"}
