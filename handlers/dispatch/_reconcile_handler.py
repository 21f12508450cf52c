"""``reconcile``: one scheduled pass over stale open jobs (see ``JobService.reconcile``)."""

from __future__ import annotations

import logging
from typing import Any

from handlers.dispatch._jobs import JobService
from handlers.dispatch._logging import log_event

__all__ = ["handle_reconcile"]


def handle_reconcile(service: JobService) -> dict[str, Any]:
    report = service.reconcile()
    summary = report.as_dict()
    log_event(logging.INFO, "reconcile pass", None, **summary)
    return summary
