"""The ComfyUI client's exceptions, and the one place where httpx and websockets exceptions are translated.

```
ComfyUIError                      anything the ComfyUI client raises
├── ComfyUITransient              retrying the job may help            (retryable = True)
│   ├── ComfyUIUnavailable        refused, reset, timed out, 5xx, unreadable answer, WebSocket gone
│   └── ComfyUICrashed            the prompt vanished: ComfyUI restarted or lost it mid-run
├── ComfyUIInvalid                the job or workflow is wrong: never retry
│   ├── RequestRejected           any other 4xx (upload, /view...); carries status and body
│   │   └── PromptRejected        /prompt said 400: ComfyUI's ``error`` + ``node_errors``
│   └── PromptNotApiFormat        /prompt said 500 for a graph that is not API format (a UI workflow)
├── ComfyUIExecutionError         the prompt ran and did not succeed
│   ├── ExecutionFailed           execution_error: node, exception, traceback, inputs
│   └── PromptInterrupted         interrupted by someone else (another /interrupt, a restart of the node)
│       └── DeadlineExceeded      interrupted by this client because the job's deadline passed
└── ComfyUIMisuse                 a bug in the caller: bad URL, client closed, bad arguments
    └── ClientClosed
```
``asyncio.CancelledError`` is never wrapped: a cancelled job interrupts its prompt, then the cancellation propagates.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx
import websockets.exceptions as ws_exc

from handlers.worker.comfy._protocol import ExecutionErrorDetails

__all__ = [
    "ClientClosed",
    "ComfyUICrashed",
    "ComfyUIError",
    "ComfyUIExecutionError",
    "ComfyUIInvalid",
    "ComfyUIMisuse",
    "ComfyUITransient",
    "ComfyUIUnavailable",
    "DeadlineExceeded",
    "ExecutionFailed",
    "PromptInterrupted",
    "PromptNotApiFormat",
    "PromptRejected",
    "RequestRejected",
    "error_class_for",
    "translate_errors",
]


class ComfyUIError(Exception):
    """Base of everything the ComfyUI client raises."""

    retryable: ClassVar[bool] = False


class ComfyUITransient(ComfyUIError):
    retryable = True


class ComfyUIUnavailable(ComfyUITransient):
    """ComfyUI could not be reached or did not answer sensibly."""


class ComfyUICrashed(ComfyUITransient):
    """The prompt is gone from ComfyUI's queue and history: the process restarted, or the prompt was lost."""

    def __init__(self, message: str, *, prompt_id: str) -> None:
        super().__init__(message)
        self.prompt_id = prompt_id


class ComfyUIInvalid(ComfyUIError):
    pass


class RequestRejected(ComfyUIInvalid):
    """A 4xx answer; ``body`` is the parsed JSON when there was some, else the text."""

    def __init__(self, message: str, *, status: int, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class PromptRejected(RequestRejected):
    """``/prompt`` refused the graph. ``error`` and ``node_errors`` are ComfyUI's own, unchanged."""

    def __init__(self, message: str, *, status: int, body: Any) -> None:
        super().__init__(message, status=status, body=body)
        body = body if isinstance(body, Mapping) else {}
        error = body.get("error")
        node_errors = body.get("node_errors")
        self.error: Mapping[str, Any] = error if isinstance(error, Mapping) else {"message": str(error or "")}
        self.node_errors: Mapping[str, Any] = node_errors if isinstance(node_errors, Mapping) else {}


class PromptNotApiFormat(ComfyUIInvalid):
    """ComfyUI answers 500 ("Server got itself in trouble") to a UI-format workflow posted as a prompt."""


class ComfyUIExecutionError(ComfyUIError):
    def __init__(self, message: str, *, prompt_id: str) -> None:
        super().__init__(message)
        self.prompt_id = prompt_id


class ExecutionFailed(ComfyUIExecutionError):
    def __init__(self, message: str, *, prompt_id: str, details: ExecutionErrorDetails) -> None:
        super().__init__(message, prompt_id=prompt_id)
        self.details = details


class PromptInterrupted(ComfyUIExecutionError):
    def __init__(
        self, message: str, *, prompt_id: str, node_id: str | None = None, node_type: str | None = None
    ) -> None:
        super().__init__(message, prompt_id=prompt_id)
        self.node_id = node_id
        self.node_type = node_type


class DeadlineExceeded(PromptInterrupted):
    pass


class ComfyUIMisuse(ComfyUIError):
    pass


class ClientClosed(ComfyUIMisuse):
    pass


# ---------------------------------------------------------------------------------------------------- the boundary

# Most specific first; error_class_for walks the exception's MRO, so an unlisted subclass maps like its parent.
_MAPPING: tuple[tuple[type[BaseException], type[ComfyUIError]], ...] = (
    # httpx: the request could not be made as written - a bug on our side.
    (httpx.UnsupportedProtocol, ComfyUIMisuse),
    (httpx.LocalProtocolError, ComfyUIMisuse),
    (httpx.InvalidURL, ComfyUIMisuse),
    (httpx.StreamError, ComfyUIMisuse),
    (httpx.CookieConflict, ComfyUIMisuse),
    # httpx: the server or the network failed us.
    (httpx.TimeoutException, ComfyUIUnavailable),
    (httpx.NetworkError, ComfyUIUnavailable),
    (httpx.RemoteProtocolError, ComfyUIUnavailable),
    (httpx.ProxyError, ComfyUIUnavailable),
    (httpx.DecodingError, ComfyUIUnavailable),
    (httpx.TooManyRedirects, ComfyUIUnavailable),
    (httpx.HTTPStatusError, ComfyUIUnavailable),
    (httpx.TransportError, ComfyUIUnavailable),
    (httpx.HTTPError, ComfyUIUnavailable),
    # websockets: our misuse.
    (ws_exc.InvalidURI, ComfyUIMisuse),
    (ws_exc.ConcurrencyError, ComfyUIMisuse),
    (ws_exc.InvalidState, ComfyUIMisuse),
    (ws_exc.InvalidProxy, ComfyUIMisuse),
    # websockets: the server went away or misbehaved.
    (ws_exc.ConnectionClosed, ComfyUIUnavailable),
    (ws_exc.InvalidHandshake, ComfyUIUnavailable),
    (ws_exc.ProxyError, ComfyUIUnavailable),
    (ws_exc.PayloadTooBig, ComfyUIUnavailable),
    (ws_exc.ProtocolError, ComfyUIUnavailable),
    (ws_exc.WebSocketException, ComfyUIUnavailable),
    # What the stdlib raises underneath both: refused connections, open timeouts, unreadable JSON.
    (json.JSONDecodeError, ComfyUIUnavailable),
    (TimeoutError, ComfyUIUnavailable),
    (OSError, ComfyUIUnavailable),
)


def error_class_for(exc_type: type[BaseException]) -> type[ComfyUIError] | None:
    """The domain class a third-party exception type becomes; ``None`` for types that pass through untouched."""
    for cls in exc_type.__mro__:
        for source, target in _MAPPING:
            if cls is source:
                return target
    return None


@contextlib.contextmanager
def translate_errors(operation: str) -> Iterator[None]:
    """The boundary: httpx, websockets and socket exceptions raised inside become ComfyUIError subclasses."""
    try:
        yield
    except ComfyUIError:
        raise
    except Exception as exc:
        target = error_class_for(type(exc))
        if target is None:
            raise
        raise target(f"{operation}: {type(exc).__name__}: {exc}") from exc
