"""The asyncio layer of the ComfyUI client: HTTP with httpx, one WebSocket per client, and nothing clever.

The protocol decisions (what a message means, when to poll, when a prompt is over) live in ``_protocol``; this
module moves bytes, routes messages to the prompt they name, reconnects, and turns deadlines and cancellation into
``/queue`` delete + ``/interrupt``. Typical use::

    async with ComfyClient("http://127.0.0.1:8188", client_id=worker_id) as comfy:
        await comfy.wait_ready(deadline)
        async with contextlib.aclosing(comfy.run_prompt(graph, prompt_id_for(job_id), deadline=d)) as events:
            async for event in events:
                ...  # Output -> upload now; ProgressUpdate -> report; Succeeded -> done

Closing the event stream before the prompt ended (cancellation, ``break``) interrupts the prompt: use ``aclosing`` so
that happens at once, not when the generator is garbage-collected. Deadlines are ``loop.time()`` instants (the
monotonic clock of the running event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import urllib.parse
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol, TypeVar

import httpx
import websockets.asyncio.client

from handlers.worker.comfy._binary import BinaryFrameError, PreviewFrame, parse_binary_frame
from handlers.worker.comfy._config import ComfyLimits
from handlers.worker.comfy._errors import (
    ClientClosed,
    ComfyUICrashed,
    ComfyUIError,
    ComfyUIMisuse,
    ComfyUITransient,
    ComfyUIUnavailable,
    DeadlineExceeded,
    ExecutionFailed,
    PromptInterrupted,
    PromptNotApiFormat,
    PromptRejected,
    RequestRejected,
    translate_errors,
)
from handlers.worker.comfy._protocol import (
    Action,
    Event,
    Failed,
    FollowState,
    GraphInfo,
    Interrupted,
    PromptFollower,
    Vanished,
    is_api_format,
    rejected_outputs,
)

__all__ = [
    "ClientState",
    "ComfyClient",
    "SocketState",
    "Submission",
    "WebSocketConnect",
    "WebSocketLike",
    "prompt_id_for",
]

logger = logging.getLogger("handlers.worker.comfy")
T = TypeVar("T")

DEFAULT_LIMITS = ComfyLimits()
#: Fixed forever: changing it would make retried jobs queue their prompt a second time.
_PROMPT_NAMESPACE = uuid.UUID("5b0b4f37-9c0e-4c55-9a3f-3f6f3f0e6a51")
#: Asks ComfyUI for type-4 previews, which name their prompt and node (so they can be routed).
_FEATURE_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}


def prompt_id_for(job_id: str) -> str:
    """The prompt id of a job: the same job id always gives the same UUID (UUID5 in a project namespace)."""
    if not job_id:
        raise ValueError("job_id must not be empty")
    return str(uuid.uuid5(_PROMPT_NAMESPACE, job_id))


class WebSocketLike(Protocol):
    """What the client needs from a WebSocket connection (``websockets``' ClientConnection has it)."""

    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self) -> None: ...


WebSocketConnect = Callable[[str], Awaitable[WebSocketLike]]


class ClientState(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class SocketState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    DOWN = "down"  # waiting for the next reconnect attempt
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Submission:
    """What ``adopt_or_queue`` did: queued the prompt, found it already finished, running or pending, or did not
    queue it because the caller's ``before_queue`` said no (``declined``)."""

    prompt_id: str
    found: Literal["queued", "finished", "running", "pending", "declined"]
    answer: Mapping[str, Any]

    @property
    def rejected_outputs(self) -> frozenset[str]:
        errors = self.answer.get("node_errors")
        return rejected_outputs(errors) if isinstance(errors, Mapping) else frozenset()


class _Signal(enum.Enum):
    SOCKET_LOST = "socket_lost"
    SOCKET_RESTORED = "socket_restored"


_Item = Mapping[str, Any] | bytes | _Signal


class _Inbox:
    """Messages routed to one followed prompt. Bounded: on overflow the follower falls back to /history."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(size)
        self.overflowed = False

    def put(self, item: _Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


class _DeadlinePassed(Exception):
    pass


async def _connect_websocket(url: str, limits: ComfyLimits) -> WebSocketLike:
    connection = await websockets.asyncio.client.connect(
        url,
        proxy=None,  # ComfyUI is beside the worker; an environment proxy must not capture loopback traffic
        open_timeout=limits.ws_open_timeout,
        ping_interval=limits.ws_ping_interval,
        ping_timeout=limits.ws_ping_timeout,
        max_size=limits.ws_max_message_bytes,
    )
    return connection


class ComfyClient:
    """A client for one ComfyUI server: HTTP calls, and one long-lived WebSocket whose messages are routed to the
    prompts being followed.

    ``http`` may be an ``httpx.AsyncClient`` (used as given, not closed here) or an ``httpx.AsyncBaseTransport``
    (wrapped); ``None`` builds the real one. ``ws_connect`` opens a WebSocket; ``None`` uses ``websockets``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        http: httpx.AsyncClient | httpx.AsyncBaseTransport | None = None,
        ws_connect: WebSocketConnect | None = None,
        limits: ComfyLimits = DEFAULT_LIMITS,
    ) -> None:
        if not client_id:
            raise ValueError("client_id must not be empty")
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.limits = limits
        ws_scheme = "wss" if parsed.scheme == "https" else "ws"
        query = urllib.parse.urlencode({"clientId": client_id})
        self.ws_url = urllib.parse.urlunsplit((ws_scheme, parsed.netloc, parsed.path.rstrip("/") + "/ws", query, ""))
        if isinstance(http, httpx.AsyncClient):
            self._http, self._owns_http = http, False
        else:
            self._http, self._owns_http = self._build_http(http), True
        limits_ = self.limits
        self._ws_connect: WebSocketConnect = ws_connect or (lambda url: _connect_websocket(url, limits_))
        self.state = ClientState.UNOPENED
        self.socket_state = SocketState.CLOSED
        self._socket_open = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._inboxes: dict[str, _Inbox] = {}
        self._current: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        #: How many times the WebSocket was opened (1 + reconnects): for logs and metrics.
        self.socket_connects = 0

    def _build_http(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        lim = self.limits
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(
                connect=lim.connect_timeout, read=lim.read_timeout, write=lim.write_timeout, pool=lim.pool_timeout
            ),
            limits=httpx.Limits(max_connections=lim.max_connections),
            trust_env=False,
        )

    # ------------------------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> ComfyClient:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Start the WebSocket reader (it connects, and reconnects, in the background)."""
        if self.state is not ClientState.UNOPENED:
            raise ComfyUIMisuse(f"open() on a client that is {self.state.value}")
        self.state = ClientState.OPEN
        self._reader = asyncio.create_task(self._read_forever(), name=f"comfyui websocket {self.ws_url}")

    async def aclose(self) -> None:
        if self.state is ClientState.CLOSED:
            return
        self.state = ClientState.CLOSED
        if self._background:
            # Interrupts of abandoned prompts are bounded by abort_timeout: let them land before the pool closes.
            await asyncio.wait(self._background, timeout=self.limits.abort_timeout)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._owns_http:
            await self._http.aclose()

    def _check_open(self, *, following: bool = False) -> None:
        if self.state is ClientState.CLOSED:
            raise ClientClosed("the ComfyUI client is closed")
        if following and self.state is ClientState.UNOPENED:
            raise ComfyUIMisuse("following a prompt needs the WebSocket: open() the client (or use `async with`)")

    # ----------------------------------------------------------------------------------------------------- HTTP

    async def _request(self, method: str, path: str, operation: str, **kwargs: Any) -> httpx.Response:
        self._check_open()
        with translate_errors(operation):
            response = await self._http.request(method, self.base_url + path, **kwargs)
        _check_status(response, operation)
        return response

    async def _json(self, method: str, path: str, operation: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, operation, **kwargs)
        with translate_errors(operation):
            return response.json()

    async def _object(self, method: str, path: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        body = await self._json(method, path, operation, **kwargs)
        if not isinstance(body, dict):
            raise ComfyUIUnavailable(f"{operation}: expected a JSON object, got {type(body).__name__}")
        return body

    async def system_stats(self) -> dict[str, Any]:
        return await self._object("GET", "/system_stats", "GET /system_stats")

    async def object_info(self) -> dict[str, Any]:
        return await self._object("GET", "/object_info", "GET /object_info")

    async def history(self, prompt_id: str) -> dict[str, Any]:
        """``{}`` until the prompt has ended, then ``{prompt_id: entry}``."""
        path = "/history/" + urllib.parse.quote(prompt_id, safe="")
        return await self._object("GET", path, "GET /history/{id}")

    async def queue(self) -> dict[str, Any]:
        return await self._object("GET", "/queue", "GET /queue")

    async def interrupt(self, prompt_id: str) -> None:
        """Interrupt ``prompt_id`` if it is the one running; ComfyUI ignores the call otherwise."""
        await self._request("POST", "/interrupt", "POST /interrupt", json={"prompt_id": prompt_id})

    async def free(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        """POST /free: ComfyUI unloads models / empties its memory after the prompt running now (at once if idle)."""
        body = {"unload_models": unload_models, "free_memory": free_memory}
        await self._request("POST", "/free", "POST /free", json=body)

    async def delete_from_queue(self, prompt_ids: Sequence[str]) -> None:
        """Remove pending prompts; a running or unknown prompt is not affected."""
        await self._request("POST", "/queue", "POST /queue delete", json={"delete": list(prompt_ids)})

    async def delete_from_history(self, prompt_ids: Sequence[str]) -> None:
        await self._request("POST", "/history", "POST /history delete", json={"delete": list(prompt_ids)})

    async def queue_prompt(
        self,
        graph: Mapping[str, Any],
        prompt_id: str,
        extra_data: Mapping[str, Any] | None = None,
        front: bool = False,
    ) -> dict[str, Any]:
        """POST /prompt. 400 raises PromptRejected with ComfyUI's body; a UI-format graph raises PromptNotApiFormat."""
        self._check_open()
        body: dict[str, Any] = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        if front:
            body["front"] = True
        operation = "POST /prompt"
        with translate_errors(operation):
            response = await self._http.post(self.base_url + "/prompt", json=body)
        if response.status_code == 400:
            detail = _body(response)
            raise PromptRejected(_rejection_message(detail), status=400, body=detail)
        if response.status_code == 500 and not is_api_format(graph):
            raise PromptNotApiFormat(
                "ComfyUI could not read the graph (HTTP 500): it is not in API format; convert UI workflows first"
            )
        _check_status(response, operation)
        with translate_errors(operation):
            answer = response.json()
        if not isinstance(answer, dict):
            raise ComfyUIUnavailable(f"{operation}: expected a JSON object, got {type(answer).__name__}")
        return answer

    async def upload_image(
        self,
        name: str,
        data: bytes | IO[bytes],
        subfolder: str = "",
        overwrite: bool = False,
        type: Literal["input", "temp", "output"] = "input",
    ) -> dict[str, Any]:
        """POST /upload/image (any media, despite the name). Returns ``{"name", "subfolder", "type"}``; without
        ``overwrite`` ComfyUI renames a clash with different bytes to ``name (1).ext``."""
        fields = {"type": type, "subfolder": subfolder}
        if overwrite:
            fields["overwrite"] = "true"
        files = {"image": (name, data, "application/octet-stream")}
        return await self._object("POST", "/upload/image", "POST /upload/image", data=fields, files=files)

    async def view_to_file(
        self,
        filename: str,
        subfolder: str,
        type: str,
        dest_path: str | os.PathLike[str],
    ) -> int:
        """Stream GET /view to ``dest_path`` (via a ``.part`` file renamed at the end); returns the byte count."""
        self._check_open()
        dest = Path(dest_path)
        partial = dest.with_name(dest.name + ".part")
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        operation = "GET /view"
        written = 0
        try:
            with translate_errors(operation):
                async with self._http.stream("GET", self.base_url + "/view", params=params) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _check_status(response, operation)
                    handle = await asyncio.to_thread(partial.open, "wb")
                    try:
                        async for chunk in response.aiter_bytes(self.limits.view_chunk_bytes):
                            await asyncio.to_thread(handle.write, chunk)
                            written += len(chunk)
                    finally:
                        await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, partial, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(partial.unlink, True)
            raise
        return written

    async def wait_ready(self, deadline: float) -> dict[str, Any]:
        """Poll /system_stats until ComfyUI answers; ComfyUIUnavailable if it has not by ``deadline``."""
        loop = asyncio.get_running_loop()
        delays = self.limits.ready.delays()
        while True:
            try:
                return await self._bounded(self.system_stats(), deadline)
            except _DeadlinePassed:
                raise ComfyUIUnavailable(f"ComfyUI at {self.base_url} was not ready by the deadline") from None
            except ComfyUITransient as exc:
                delay = next(delays)
                if loop.time() + delay >= deadline:
                    raise ComfyUIUnavailable(f"ComfyUI at {self.base_url} was not ready by the deadline") from exc
                logger.debug("ComfyUI not ready (%s); next try in %.2fs", exc, delay)
                await asyncio.sleep(delay)

    async def _bounded(self, awaitable: Awaitable[T], deadline: float) -> T:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise _DeadlinePassed
        try:
            return await asyncio.wait_for(awaitable, remaining)
        except TimeoutError:
            raise _DeadlinePassed from None

    # ------------------------------------------------------------------------------------------------ WebSocket

    @property
    def socket_connected(self) -> bool:
        return self._socket_open.is_set()

    async def wait_socket(self, deadline: float) -> bool:
        """Wait until ``deadline`` for the WebSocket; False if it is still down (following works anyway)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._socket_open.wait(), max(_remaining(deadline), 0))
        return self._socket_open.is_set()

    async def _read_forever(self) -> None:
        """Connect, read, route; on any failure wait (backoff) and connect again, until the client closes."""
        delays = self.limits.reconnect.delays()
        while self.state is ClientState.OPEN:
            self.socket_state = SocketState.CONNECTING
            try:
                with translate_errors("WebSocket connect"):
                    ws = await self._ws_connect(self.ws_url)
            except Exception as exc:  # the reader must outlive any failure, even a bug in an injected connect
                delay = next(delays)
                self.socket_state = SocketState.DOWN
                logger.info("ComfyUI WebSocket connect failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            delays = self.limits.reconnect.delays()
            try:
                await self._read(ws)
            except ComfyUIError as exc:
                logger.info("ComfyUI WebSocket lost: %s", exc)
            except Exception:
                logger.exception("ComfyUI WebSocket reader failed; reconnecting")
            finally:
                self._socket_open.clear()
                self.socket_state = SocketState.DOWN
                self._broadcast(_Signal.SOCKET_LOST)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), self.limits.abort_timeout)
            delay = next(delays)
            logger.info("reconnecting the ComfyUI WebSocket in %.2fs", delay)
            await asyncio.sleep(delay)
        self.socket_state = SocketState.CLOSED

    async def _read(self, ws: WebSocketLike) -> None:
        with translate_errors("WebSocket"):
            await ws.send(json.dumps(_FEATURE_FLAGS))
            self.socket_state = SocketState.OPEN
            self.socket_connects += 1
            self._socket_open.set()
            self._broadcast(_Signal.SOCKET_RESTORED)
            while True:
                frame = await ws.recv()
                try:
                    self._route(frame)
                except Exception:  # one odd frame must not cost the connection
                    logger.exception("could not route a ComfyUI WebSocket frame")

    def _broadcast(self, signal: _Signal) -> None:
        for inbox in self._inboxes.values():
            inbox.put(signal)

    def _route(self, frame: str | bytes) -> None:
        """Send a frame to the follower of the prompt it names; frames naming none go to the current prompt."""
        if isinstance(frame, bytes):
            target = self._current_target()
            with contextlib.suppress(BinaryFrameError):
                parsed = parse_binary_frame(frame)
                if isinstance(parsed, PreviewFrame) and parsed.prompt_id is not None:
                    target = parsed.prompt_id
            if target is not None and target in self._inboxes:
                self._inboxes[target].put(frame)
            return
        try:
            message = json.loads(frame)
        except ValueError:
            logger.warning("ignoring a WebSocket text frame that is not JSON: %.200r", frame)
            return
        if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
            return
        kind = message.get("type")
        prompt_id = message["data"].get("prompt_id")
        if prompt_id is None:
            # Only the `executing` sent on reconnect matters here; status, logs and feature_flags are for no prompt.
            if kind != "executing":
                return
            prompt_id = self._current_target()
        elif kind in ("execution_start", "executing") and prompt_id in self._inboxes:
            self._current = prompt_id
        if prompt_id is not None and prompt_id in self._inboxes:
            self._inboxes[prompt_id].put(message)
        if kind == "executing" and message["data"].get("node") is None and prompt_id == self._current:
            self._current = None

    def _current_target(self) -> str | None:
        if self._current is not None:
            return self._current
        if len(self._inboxes) == 1:
            return next(iter(self._inboxes))
        return None

    def _register(self, prompt_id: str) -> _Inbox:
        if prompt_id in self._inboxes:
            raise ComfyUIMisuse(f"prompt {prompt_id} is already being followed by this client")
        inbox = _Inbox(self.limits.max_buffered_messages)
        self._inboxes[prompt_id] = inbox
        return inbox

    def _unregister(self, prompt_id: str) -> None:
        self._inboxes.pop(prompt_id, None)
        if self._current == prompt_id:
            self._current = None

    # --------------------------------------------------------------------------------------------- following

    async def adopt_or_queue(
        self,
        prompt_id: str,
        graph: Mapping[str, Any],
        extra_data: Mapping[str, Any] | None = None,
        front: bool = False,
        before_queue: Callable[[], Awaitable[bool]] | None = None,
    ) -> Submission:
        """Queue ``graph`` as ``prompt_id`` unless ComfyUI already knows that id (a retried job on this worker).

        Finished successfully, running, or pending: it is adopted, not run again. A finished prompt that failed
        or was interrupted is removed from history and queued again, so the retry really retries.
        ``before_queue`` is awaited just before the prompt is queued (not when one is adopted): the caller's
        last word (``False``: do not queue; the submission is ``declined``), while the look-ups above ran beside
        whatever it waits for.
        """
        # Both look-ups at once: they are independent reads, and this is on every job's path to the GPU.
        history, queue = await asyncio.gather(self.history(prompt_id), self.queue())
        entry = history.get(prompt_id)
        if isinstance(entry, Mapping):
            status = entry.get("status")
            if not isinstance(status, Mapping) or status.get("status_str", "success") == "success":
                return Submission(prompt_id, "finished", {})
            await self.delete_from_history([prompt_id])
        else:
            if _in_queue(queue.get("queue_running"), prompt_id):
                return Submission(prompt_id, "running", {})
            if _in_queue(queue.get("queue_pending"), prompt_id):
                return Submission(prompt_id, "pending", {})
        if before_queue is not None and not await before_queue():
            return Submission(prompt_id, "declined", {})
        answer = await self.queue_prompt(graph, prompt_id, extra_data, front)
        return Submission(prompt_id, "queued", answer)

    async def run_prompt(
        self,
        graph: Mapping[str, Any],
        prompt_id: str,
        *,
        deadline: float,
        extra_data: Mapping[str, Any] | None = None,
        front: bool = False,
        output_nodes: Collection[str] | None = None,
        before_queue: Callable[[], Awaitable[bool]] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Adopt or queue the prompt, then follow it to the end (see ``follow``; ``before_queue``: see
        ``adopt_or_queue``; when it declines, the stream ends at once with no events; ``weights``: each node's
        expected cost, for progress)."""
        self._check_open(following=True)
        inbox = self._register(prompt_id)  # before queueing, so no early message is dropped
        driving = False  # once _drive runs, it owns the cleanup
        try:
            await self.wait_socket(min(deadline, asyncio.get_running_loop().time() + self.limits.socket_wait))
            submission = await self._bounded(
                self.adopt_or_queue(prompt_id, graph, extra_data, front, before_queue), deadline
            )
            if submission.found == "declined":
                return
            info = GraphInfo.from_graph(
                graph, output_nodes=output_nodes, rejected=submission.rejected_outputs, weights=weights
            )
            follower = PromptFollower(prompt_id, info)
            found = submission.found
            first = follower.note_queued(submission.answer) if found == "queued" else follower.note_adopted(found)
            for event in first:
                yield event
            driving = True
            async with contextlib.aclosing(self._drive(follower, inbox, deadline)) as events:
                async for event in events:
                    yield event
        except _DeadlinePassed:
            # Raised before following started (adopt/queue too slow): make sure nothing runs for nobody.
            await self._abort(prompt_id)
            raise DeadlineExceeded(f"prompt {prompt_id} did not finish by its deadline", prompt_id=prompt_id) from None
        except (asyncio.CancelledError, GeneratorExit):
            if not driving:
                await self._abort_shielded(prompt_id)
            raise
        finally:
            self._unregister(prompt_id)

    async def follow(
        self,
        prompt_id: str,
        graph: Mapping[str, Any] | GraphInfo,
        *,
        deadline: float,
        output_nodes: Collection[str] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Follow a prompt that is already queued, yielding protocol events until ``Succeeded``.

        The socket is raced against /history polls (faster while the socket is down), so a dropped connection or a
        missed end marker never hangs. Failure raises: ExecutionFailed, PromptInterrupted, ComfyUICrashed (gone
        from queue and history). At ``deadline`` the prompt is removed from the queue and interrupted, then
        DeadlineExceeded is raised; on cancellation (or closing the iterator early) the same cleanup runs, shielded,
        and the cancellation propagates.
        """
        self._check_open(following=True)
        info = graph if isinstance(graph, GraphInfo) else GraphInfo.from_graph(graph, output_nodes=output_nodes)
        inbox = self._register(prompt_id)
        try:
            async with contextlib.aclosing(self._drive(PromptFollower(prompt_id, info), inbox, deadline)) as events:
                async for event in events:
                    yield event
        finally:
            self._unregister(prompt_id)

    async def _drive(self, follower: PromptFollower, inbox: _Inbox, deadline: float) -> AsyncGenerator[Event, None]:
        prompt_id = follower.prompt_id
        loop = asyncio.get_running_loop()
        if not self._socket_open.is_set():
            follower.socket_lost()
        unavailable_since: float | None = None
        retry_delays = self.limits.reconnect.delays()
        try:
            while (action := follower.next_action) is not Action.DONE:
                if loop.time() >= deadline:
                    raise _DeadlinePassed  # checked here too: a busy socket must not outrun the deadline
                events: list[Event]
                try:
                    if not inbox.queue.empty():
                        # What the socket already said is older than any answer a poll would get: read it first.
                        events = _feed(follower, inbox.queue.get_nowait())
                    elif action is Action.POLL_HISTORY:
                        events = follower.feed_history(await self._bounded(self.history(prompt_id), deadline))
                    elif action is Action.POLL_QUEUE:
                        events = follower.feed_queue(await self._bounded(self.queue(), deadline))
                    else:
                        events = await self._next_events(follower, inbox, deadline)
                    unavailable_since = None
                except ComfyUITransient as exc:
                    # ComfyUI is briefly unreachable (or restarting): keep trying until the grace period is spent.
                    now = loop.time()
                    unavailable_since = now if unavailable_since is None else unavailable_since
                    if now - unavailable_since > self.limits.unavailable_grace:
                        raise
                    delay = min(next(retry_delays), max(deadline - now, 0))
                    logger.info("polling ComfyUI for prompt %s failed (%s); retrying in %.2fs", prompt_id, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                for event in events:
                    _raise_if_failed(event)
                    yield event
        except _DeadlinePassed:
            await self._abort(prompt_id)
            raise DeadlineExceeded(f"prompt {prompt_id} did not finish by its deadline", prompt_id=prompt_id) from None
        except (asyncio.CancelledError, GeneratorExit):
            if not follower.done:
                await self._abort_shielded(prompt_id)
            raise

    async def _next_events(self, follower: PromptFollower, inbox: _Inbox, deadline: float) -> list[Event]:
        if inbox.overflowed:
            inbox.overflowed = False
            return follower.poll_due()
        # While the socket is up it reports the start and the end; polls only guard against what it may miss.
        blind = not follower.socket_up or follower.state is FollowState.ENDING
        interval = self.limits.history_poll_interval_blind if blind else self.limits.history_poll_interval
        remaining = _remaining(deadline)
        if remaining <= 0:
            raise _DeadlinePassed
        try:
            item = await asyncio.wait_for(inbox.queue.get(), min(interval, remaining))
        except TimeoutError:
            return follower.poll_due()
        return _feed(follower, item)

    async def _abort(self, prompt_id: str) -> None:
        """Take the prompt off ComfyUI: delete it if pending (first, so it cannot start), interrupt it if running."""
        steps: tuple[Callable[[], Awaitable[None]], ...] = (
            lambda: self.delete_from_queue([prompt_id]),
            lambda: self.interrupt(prompt_id),
        )
        for step in steps:
            try:
                await asyncio.wait_for(step(), self.limits.abort_timeout)
            except (ComfyUIError, TimeoutError) as exc:
                logger.warning("could not abort prompt %s: %s", prompt_id, exc)

    async def _abort_shielded(self, prompt_id: str) -> None:
        if self.state is ClientState.CLOSED:
            return
        logger.info("cancelling ComfyUI prompt %s", prompt_id)
        task = asyncio.ensure_future(self._abort(prompt_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        # Cancelled again while waiting: the abort goes on in the background (aclose waits for it).
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)


def _feed(follower: PromptFollower, item: _Item) -> list[Event]:
    if item is _Signal.SOCKET_LOST:
        return follower.socket_lost()
    if item is _Signal.SOCKET_RESTORED:
        return follower.socket_restored()
    if isinstance(item, bytes):
        return follower.feed_binary(item)
    assert isinstance(item, Mapping)
    return follower.feed_message(item)


def _remaining(deadline: float) -> float:
    return deadline - asyncio.get_running_loop().time()


def _raise_if_failed(event: Event) -> None:
    if isinstance(event, Failed):
        d = event.details
        where = f"node {d.node_id} ({d.node_type})" if d.node_id else "a node"
        raise ExecutionFailed(
            f"{where} failed: {d.exception_type}: {d.exception_message.strip()}",
            prompt_id=event.prompt_id,
            details=d,
        )
    if isinstance(event, Interrupted):
        raise PromptInterrupted(
            f"prompt {event.prompt_id} was interrupted at node {event.node_id} ({event.node_type})",
            prompt_id=event.prompt_id,
            node_id=event.node_id,
            node_type=event.node_type,
        )
    if isinstance(event, Vanished):
        raise ComfyUICrashed(
            f"prompt {event.prompt_id} is gone from ComfyUI's queue and history (restarted or deleted)",
            prompt_id=event.prompt_id,
        )


def _in_queue(items: object, prompt_id: str) -> bool:
    return isinstance(items, list) and any(
        isinstance(item, list) and len(item) > 1 and item[1] == prompt_id for item in items
    )


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _rejection_message(body: Any) -> str:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message = str(error.get("message") or error.get("type") or "rejected")
            details = error.get("details")
            return f"ComfyUI rejected the prompt: {message}" + (f" ({details})" if details else "")
    return f"ComfyUI rejected the prompt: {str(body)[:500]}"


def _check_status(response: httpx.Response, operation: str) -> None:
    status = response.status_code
    if status < 400:
        return
    body = _body(response)
    if status >= 500 or status in (408, 429):
        raise ComfyUIUnavailable(f"{operation}: HTTP {status}: {str(body)[:500]}")
    raise RequestRejected(f"{operation}: HTTP {status}: {str(body)[:500]}", status=status, body=body)
