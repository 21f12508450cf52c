"""The client's exception tree, the one translation boundary, and the pure retry policy."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import uuid

import httpx
import pytest
import websockets.exceptions as ws_exc

from handlers.worker.comfy import _errors as _comfy_errors
from handlers.worker.comfy._client import prompt_id_for
from handlers.worker.comfy._config import ComfyLimits
from handlers.worker.comfy._errors import (
    ComfyUICrashed,
    ComfyUIError,
    ComfyUIMisuse,
    ComfyUIUnavailable,
    DeadlineExceeded,
    ExecutionFailed,
    PromptInterrupted,
    PromptRejected,
    RequestRejected,
    error_class_for,
    translate_errors,
)
from handlers.worker.comfy._protocol import ExecutionErrorDetails


def _exception_classes(module: object, names: list[str]) -> list[type[BaseException]]:
    classes = (getattr(module, name) for name in names)
    return [c for c in classes if inspect.isclass(c) and issubclass(c, Exception)]


HTTPX_EXCEPTIONS = _exception_classes(httpx, list(httpx.__all__))
WEBSOCKETS_EXCEPTIONS = _exception_classes(ws_exc, list(ws_exc.__all__))


def test_there_are_third_party_exceptions_to_map() -> None:
    assert len(HTTPX_EXCEPTIONS) > 15
    assert len(WEBSOCKETS_EXCEPTIONS) > 15


@pytest.mark.parametrize("exc_type", HTTPX_EXCEPTIONS + WEBSOCKETS_EXCEPTIONS, ids=lambda c: c.__qualname__)
def test_mapping_is_complete(exc_type: type[BaseException]) -> None:
    """Every exception httpx and websockets can raise becomes a ComfyUIError: none leaks past the boundary."""
    target = error_class_for(exc_type)
    assert target is not None, f"{exc_type.__module__}.{exc_type.__qualname__} is not translated"
    assert issubclass(target, ComfyUIError)


@pytest.mark.parametrize(
    ("exc_type", "expected"),
    [
        (httpx.ConnectError, ComfyUIUnavailable),
        (httpx.ReadTimeout, ComfyUIUnavailable),
        (httpx.PoolTimeout, ComfyUIUnavailable),
        (httpx.RemoteProtocolError, ComfyUIUnavailable),
        (httpx.UnsupportedProtocol, ComfyUIMisuse),
        (httpx.InvalidURL, ComfyUIMisuse),
        (httpx.StreamConsumed, ComfyUIMisuse),
        (ws_exc.ConnectionClosedError, ComfyUIUnavailable),
        (ws_exc.ConnectionClosedOK, ComfyUIUnavailable),
        (ws_exc.InvalidStatus, ComfyUIUnavailable),
        (ws_exc.InvalidURI, ComfyUIMisuse),
        (ConnectionRefusedError, ComfyUIUnavailable),
        (TimeoutError, ComfyUIUnavailable),
        (json.JSONDecodeError, ComfyUIUnavailable),
    ],
)
def test_mapping_is_right(exc_type: type[BaseException], expected: type[ComfyUIError]) -> None:
    assert error_class_for(exc_type) is expected


def test_translate_errors_chains_and_passes_the_rest_through() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:1/x")
    with pytest.raises(ComfyUIUnavailable, match="GET /x: ConnectError") as info, translate_errors("GET /x"):
        raise httpx.ConnectError("refused", request=request)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    with pytest.raises(ValueError, match="mine"), translate_errors("op"):
        raise ValueError("mine")
    with pytest.raises(asyncio.CancelledError), translate_errors("op"):
        raise asyncio.CancelledError
    already = PromptRejected("no", status=400, body={})
    with pytest.raises(PromptRejected) as same, translate_errors("op"):
        raise already
    assert same.value is already


def _tree_classes() -> set[str]:
    found = set()
    stack: list[type[ComfyUIError]] = [ComfyUIError]
    while stack:
        cls = stack.pop()
        found.add(cls.__name__)
        stack.extend(cls.__subclasses__())
    return found


def test_one_docstring_shows_the_whole_tree() -> None:
    doc = _comfy_errors.__doc__ or ""
    named = set(re.findall(r"(?:^|[─ ])([A-Z][A-Za-z]+)\s", doc, flags=re.MULTILINE)) & _tree_classes()
    assert named == _tree_classes()
    assert set(_comfy_errors.__all__) >= _tree_classes()


def test_branches_and_retryability() -> None:
    details = ExecutionErrorDetails("1", "EmptyImage", "RuntimeError", "boom")
    transient = [ComfyUIUnavailable("x"), ComfyUICrashed("x", prompt_id="p")]
    fatal = [
        RequestRejected("x", status=404),
        PromptRejected("x", status=400, body={"error": {"type": "prompt_no_outputs"}, "node_errors": {}}),
        ExecutionFailed("x", prompt_id="p", details=details),
        PromptInterrupted("x", prompt_id="p"),
        DeadlineExceeded("x", prompt_id="p"),
        ComfyUIMisuse("x"),
    ]
    assert all(e.retryable for e in transient)
    assert not any(e.retryable for e in fatal)
    rejected = fatal[1]
    assert isinstance(rejected, PromptRejected)
    assert rejected.error == {"type": "prompt_no_outputs"}
    assert rejected.node_errors == {}


@pytest.mark.parametrize("bad", [{"read_timeout": 0}, {"history_poll_interval": float("nan")}, {"max_connections": 0}])
def test_limits_are_finite(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ComfyLimits(**bad)  # type: ignore[arg-type]


def test_prompt_id_for_is_deterministic_and_distinct() -> None:
    first = prompt_id_for("job-1")
    assert first == prompt_id_for("job-1")
    assert first != prompt_id_for("job-2")
    assert uuid.UUID(first).version == 5
    # Pinned: changing the namespace would make every retried job run its prompt a second time.
    assert first == "02185365-36e8-5467-a991-1033a9c89de7"
    with pytest.raises(ValueError):
        prompt_id_for("")


def test_package_exports_the_client() -> None:
    from handlers.worker import comfy

    exported = set(comfy.__all__)
    assert _tree_classes() <= exported
    assert {"ComfyClient", "ComfyLimits", "PromptFollower", "Output", "Succeeded", "prompt_id_for"} <= exported
