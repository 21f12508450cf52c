"""``handlers.worker.comfy``'s public surface is pinned: a name added or removed is a deliberate change."""

from __future__ import annotations

from handlers.worker import comfy as package

EXPECTED = [
    "TERMINAL_EVENTS",
    "Adopted",
    "Cached",
    "ClientClosed",
    "ClientState",
    "ComfyClient",
    "ComfyLimits",
    "ComfyUICrashed",
    "ComfyUIError",
    "ComfyUIExecutionError",
    "ComfyUIInvalid",
    "ComfyUIMisuse",
    "ComfyUITransient",
    "ComfyUIUnavailable",
    "DeadlineExceeded",
    "Event",
    "ExecutionErrorDetails",
    "ExecutionFailed",
    "Failed",
    "FollowState",
    "GraphInfo",
    "Interrupted",
    "NodeStarted",
    "Output",
    "Preview",
    "ProgressText",
    "ProgressUpdate",
    "PromptFollower",
    "PromptInterrupted",
    "PromptNotApiFormat",
    "PromptRejected",
    "QueuePosition",
    "Queued",
    "RequestRejected",
    "SocketState",
    "Started",
    "StepProgress",
    "Submission",
    "Succeeded",
    "Vanished",
    "WebSocketConnect",
    "WebSocketLike",
    "is_api_format",
    "prompt_id_for",
]


def test_all_is_pinned() -> None:
    assert package.__all__ == EXPECTED


def test_every_exported_name_exists_and_is_defined_in_the_package() -> None:
    for name in package.__all__:
        member = getattr(package, name)
        module = getattr(member, "__module__", None)
        if module is not None and isinstance(member, type):
            assert module.startswith("handlers.worker.comfy."), (name, module)
