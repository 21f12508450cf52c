"""ComfyUI's own failure bodies turned into :class:`JobError`: the 400 of ``POST /prompt`` and the
``execution_error`` WebSocket message (shapes recorded from ComfyUI 0.3.64, see shared/comfyui/PROTOCOL.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

from handlers.contract._errors import ErrorCode, ExecutionFailure, JobError, NodeError

__all__ = ["comfyui_execution_error", "comfyui_rejection_error"]


def _allowed(extra_info: Mapping[str, Any]) -> list[JsonValue] | None:
    config = extra_info.get("input_config")
    if not isinstance(config, list) or not config:
        return None
    head = config[0]
    if isinstance(head, list):  # V1 combo: [["a", "b"], {...}]
        return list(head)
    if head == "COMBO" and len(config) > 1 and isinstance(config[1], Mapping):  # V3 combo
        options = config[1].get("options")
        return list(options) if isinstance(options, list) else None
    return None


def _node_errors(node_errors: Any) -> list[NodeError]:
    found: list[NodeError] = []
    if not isinstance(node_errors, Mapping):
        return found
    for node_id, entry in node_errors.items():
        if not isinstance(entry, Mapping):
            continue
        class_type = entry.get("class_type")
        for error in entry.get("errors") or []:
            if not isinstance(error, Mapping):
                continue
            raw_extra = error.get("extra_info")
            extra: Mapping[str, Any] = raw_extra if isinstance(raw_extra, Mapping) else {}
            message = str(error.get("message") or "")
            details = error.get("details")
            if details:
                message = f"{message}: {details}" if message else str(details)
            found.append(
                NodeError(
                    node_id=str(node_id),
                    class_type=class_type if isinstance(class_type, str) else None,
                    input=extra.get("input_name") if isinstance(extra.get("input_name"), str) else None,
                    type=str(error.get("type") or "unknown"),
                    message=message,
                    allowed=_allowed(extra),
                )
            )
    return found


def comfyui_rejection_error(body: Any, *, job_id: str | None = None) -> JobError:
    """``POST /prompt`` answered 400 (or 200 with ``node_errors`` for some outputs): ``workflow_invalid``, with one
    :class:`NodeError` per failed input."""
    body = body if isinstance(body, Mapping) else {}
    error = body.get("error") if isinstance(body.get("error"), Mapping) else {}
    message = str(error.get("message") or "ComfyUI rejected the workflow")
    details = error.get("details")
    if details:
        message = f"{message} ({details})"
    node_errors = _node_errors(body.get("node_errors"))
    if node_errors and not details:
        message = f"{message}: " + "; ".join(
            f"node {e.node_id}" + (f".{e.input}" if e.input else "") + f" {e.message}" for e in node_errors
        )
    return JobError(code=ErrorCode.WORKFLOW_INVALID, message=message, job_id=job_id, node_errors=node_errors)


def comfyui_execution_error(data: Mapping[str, Any], *, job_id: str | None = None) -> JobError:
    """The ``data`` of an ``execution_error`` message (or the same entry in ``/history`` status messages)."""
    traceback = data.get("traceback")
    failure = ExecutionFailure(
        node_id=str(data.get("node_id", "")),
        node_type=data.get("node_type") if isinstance(data.get("node_type"), str) else None,
        exception_type=data.get("exception_type") if isinstance(data.get("exception_type"), str) else None,
        exception_message=str(data.get("exception_message") or "").strip(),
        traceback=[str(line) for line in traceback] if isinstance(traceback, list) else [],
    )
    where = f"node {failure.node_id}" + (f" ({failure.node_type})" if failure.node_type else "")
    first_line = failure.exception_message.splitlines()[0] if failure.exception_message else "failed"
    kind = f"{failure.exception_type}: " if failure.exception_type else ""
    return JobError(
        code=ErrorCode.EXECUTION_FAILED,
        message=f"{where} raised {kind}{first_line}",
        job_id=job_id,
        prompt_id=data.get("prompt_id") if isinstance(data.get("prompt_id"), str) else None,
        execution=failure,
    )
