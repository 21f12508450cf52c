"""The dispatch Lambdas: SQS → RunPod with every job's state in DynamoDB, RunPod and progress webhooks, the job
record for callers, and a scheduled reconciler.

Importing this package does no I/O and pulls in neither boto3, httpx, the runpod SDK nor pillow: the entry points
build their clients on the first call and keep them for the life of the process (``_runtime.runtime``). The
machinery (``JobService``, stores, RunPod client) lives in private modules, importable directly by tests.

Tools (``comfy-relay aws init``, the local stack) use :func:`provision`, :class:`ResourceNames`,
:class:`DispatchError` and :func:`aws_errors` (botocore's exceptions as dispatch errors) from here; they are
loaded on first access (PEP 562), so importing the package stays free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlers.dispatch._aws_errors import aws_errors
    from handlers.dispatch._errors import DispatchError
    from handlers.dispatch._provision import provision
    from handlers.dispatch._resources import ResourceNames

__all__ = ["DispatchError", "ResourceNames", "aws_errors", "on_queue", "on_webhook", "provision", "reconcile"]

#: Public names that live in private modules, imported when first used.
_LAZY = {
    "DispatchError": "handlers.dispatch._errors",
    "ResourceNames": "handlers.dispatch._resources",
    "aws_errors": "handlers.dispatch._aws_errors",
    "provision": "handlers.dispatch._provision",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def on_queue(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """SQS event source (batch): ``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}``."""
    from handlers.dispatch._queue_handler import handle_queue  # noqa: PLC0415
    from handlers.dispatch._runtime import runtime  # noqa: PLC0415

    current = runtime()
    return handle_queue(current.service, event, current.settings.batch_concurrency)


def on_webhook(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Function URL / HTTP API event: RunPod webhooks, signed progress events, ``GET /jobs/{job_id}``."""
    from handlers.dispatch._runtime import runtime  # noqa: PLC0415

    return runtime().webhook(event)


def reconcile(event: dict[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    """Scheduled: repair stale open jobs, resubmit lost ones, submit ones a crash left unsubmitted."""
    from handlers.dispatch._reconcile_handler import handle_reconcile  # noqa: PLC0415
    from handlers.dispatch._runtime import runtime  # noqa: PLC0415

    return handle_reconcile(runtime().service)
