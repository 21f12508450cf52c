"""The client's I/O layer with in-memory transports: recorded WebSocket frames replayed through an injected socket,
and HTTP answered by ``httpx.MockTransport`` from the same recordings. No server, no network."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.exceptions as ws_exc

from handlers.common import Backoff
from handlers.worker.comfy._client import ComfyClient
from handlers.worker.comfy._config import ComfyLimits
from handlers.worker.comfy._errors import ComfyUIMisuse
from handlers.worker.comfy._protocol import Cached, Event, NodeStarted, Output, Preview, Queued, Succeeded
from tests.worker.comfy.test_protocol import Frame, Transcript, load

pytestmark = pytest.mark.timeout(60)

FAST = ComfyLimits(
    history_poll_interval=0.5,
    history_poll_interval_blind=0.02,
    reconnect=Backoff(base_s=0.01, cap_s=0.05, jitter=0),
)


class ReplayServer:
    """Plays recorded frames to the first socket once the prompt is posted; answers HTTP from the recordings."""

    def __init__(
        self, transcripts: list[Transcript], *, cut_after: int | None = None, socket_after: frozenset[str] = frozenset()
    ) -> None:
        self.transcripts = transcripts
        self.frames: list[Frame | str] = [f for t in transcripts for f in t.frames]
        self.cut_after = cut_after
        self.posted = asyncio.Event()
        self.played = asyncio.Event()
        self.sockets = 0
        self.sent: list[str] = []
        self.requests: list[str] = []
        #: The socket refuses connections until /history was asked about each of these prompts.
        self.socket_after = set(socket_after)

    # ---- WebSocket
    async def connect(self, url: str) -> ReplayServer.Socket:
        if self.socket_after:
            raise ConnectionRefusedError("not yet")
        self.sockets += 1
        if self.sockets > 1 and self.cut_after is not None:
            raise ConnectionRefusedError("the replay serves one socket")
        return ReplayServer.Socket(self)

    class Socket:
        def __init__(self, server: ReplayServer) -> None:
            self.server = server
            self.position = 0

        async def send(self, message: str) -> None:
            self.server.sent.append(message)

        async def recv(self) -> str | bytes:
            server = self.server
            await server.posted.wait()
            if server.cut_after is not None and self.position >= server.cut_after:
                server.played.set()
                raise ws_exc.ConnectionClosedError(None, None)
            if self.position >= len(server.frames):
                server.played.set()
                await asyncio.Event().wait()  # a quiet socket, until the client closes
            frame = server.frames[self.position]
            self.position += 1
            return frame if isinstance(frame, bytes | str) else json.dumps(frame)

        async def close(self) -> None:
            return None

    # ---- HTTP
    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(f"{request.method} {path}")
        if request.method == "POST" and path == "/prompt":
            body = json.loads(request.content)
            answer = next(t.answer for t in self.transcripts if t.prompt_id == body["prompt_id"])
            self.posted.set()
            return httpx.Response(200, json=answer)
        if path.startswith("/history/"):
            prompt_id = path.removeprefix("/history/")
            self.socket_after.discard(prompt_id)
            if not self.played.is_set():
                return httpx.Response(200, json={})
            entries: dict[str, Any] = {}
            for t in self.transcripts:
                entries.update(t.history or {})
            return httpx.Response(200, json={prompt_id: entries[prompt_id]} if prompt_id in entries else {})
        if path == "/queue":
            live = [[n, t.prompt_id, {}, {}, []] for n, t in enumerate(self.transcripts)]
            if not self.posted.is_set() or self.played.is_set():
                live = []
            return httpx.Response(200, json={"queue_running": live[:1], "queue_pending": live[1:]})
        if path in ("/interrupt",) or (path == "/queue" and request.method == "POST"):
            return httpx.Response(200)
        return httpx.Response(404)


def client(server: ReplayServer, limits: ComfyLimits = FAST) -> ComfyClient:
    return ComfyClient(
        "http://comfy.invalid:8188",
        client_id="replay",
        http=httpx.MockTransport(server.handle),
        ws_connect=server.connect,
        limits=limits,
    )


async def run(comfy: ComfyClient, t: Transcript) -> list[Event]:
    deadline = asyncio.get_running_loop().time() + 30
    async with contextlib.aclosing(comfy.run_prompt(t.graph, t.prompt_id, deadline=deadline)) as events:
        return [event async for event in events]


def outputs(events: list[Event]) -> Mapping[str, Any]:
    return {e.node: e.ui for e in events if isinstance(e, Output)}


async def test_replayed_run_with_unrouted_previews(transcripts_dir: Path) -> None:
    """Type-1 previews carry no prompt id: they reach the prompt being followed."""
    t = load(transcripts_dir, "50_ws_image_legacy_client")
    server = ReplayServer([t])
    async with client(server) as comfy:
        events = await run(comfy, t)
    assert json.loads(server.sent[0]) == {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) == 3
    assert {(p.node, p.mime) for p in previews} == {("2", "image/png")}
    assert isinstance(events[-1], Succeeded)
    assert dict(events[-1].outputs) == t.entry["outputs"]


@pytest.mark.parametrize("cut_after", [0, 4, 9, 15, 22])
async def test_socket_cut_and_never_back(transcripts_dir: Path, cut_after: int) -> None:
    """The socket dies and every reconnect is refused: /history alone finishes the job, with every output."""
    t = load(transcripts_dir, "01_success")
    server = ReplayServer([t], cut_after=cut_after)
    async with client(server) as comfy:
        events = await run(comfy, t)
    assert isinstance(events[-1], Succeeded)
    assert outputs(events) == t.entry["outputs"]
    assert sum(isinstance(e, Output) for e in events) == len(t.entry["outputs"])
    assert f"GET /history/{t.prompt_id}" in server.requests


async def test_two_prompts_on_one_socket_are_routed_by_prompt_id(transcripts_dir: Path) -> None:
    first, second = load(transcripts_dir, "01_success"), load(transcripts_dir, "02_cached_identical")
    # Both prompts are already queued; the frames flow once both followers are there (they poll /history first,
    # because the socket is down when they start).
    server = ReplayServer([first, second], socket_after=frozenset({first.prompt_id, second.prompt_id}))
    server.posted.set()
    async with client(server) as comfy:
        deadline = asyncio.get_running_loop().time() + 30

        async def follow(t: Transcript) -> list[Event]:
            return [e async for e in comfy.follow(t.prompt_id, t.graph, deadline=deadline)]

        a, b = await asyncio.gather(follow(first), follow(second))
    assert {e.node for e in a if isinstance(e, NodeStarted)} == {"1", "2", "3", "4", "5"}
    assert not any(isinstance(e, Cached) for e in a)
    assert [e for e in b if isinstance(e, Cached)] == [Cached(("1", "2", "3", "4", "5"))]
    assert not any(isinstance(e, NodeStarted) for e in b)
    assert outputs(a) == first.entry["outputs"]
    assert outputs(b) == second.entry["outputs"]


async def test_following_the_same_prompt_twice_is_misuse(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "01_success")
    server = ReplayServer([t])
    async with client(server) as comfy:
        deadline = asyncio.get_running_loop().time() + 30
        first = comfy.run_prompt(t.graph, t.prompt_id, deadline=deadline)
        assert isinstance(await first.__anext__(), Queued)
        with pytest.raises(ComfyUIMisuse):
            await comfy.follow(t.prompt_id, t.graph, deadline=deadline).__anext__()
        # Abandoning a prompt before its end takes it off ComfyUI.
        await first.aclose()
        assert server.requests[-2:] == ["POST /queue", "POST /interrupt"]


async def test_garbage_frames_do_not_break_the_socket(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "01_success")
    server = ReplayServer([t])
    server.frames[4:4] = [
        "not json",
        json.dumps({"type": "executing"}),
        b"\0",
        json.dumps([1, 2]),
        b"\0\0\0\4\0\0\0\x09{}",  # metadata length overruns the frame
    ]
    async with client(server) as comfy:
        events = await run(comfy, t)
        assert comfy.socket_connects == 1
    assert {e.node for e in events if isinstance(e, NodeStarted)} == {"1", "2", "3", "4", "5"}
    assert isinstance(events[-1], Succeeded)


async def test_overflowing_inbox_falls_back_to_history(transcripts_dir: Path) -> None:
    """A consumer too slow for the socket loses messages, never outputs: history fills the gap."""
    t = load(transcripts_dir, "01_success")
    server = ReplayServer([t])
    tiny = ComfyLimits(
        history_poll_interval=0.5,
        history_poll_interval_blind=0.02,
        reconnect=Backoff(base_s=0.01, cap_s=0.05, jitter=0),
        max_buffered_messages=2,
    )
    async with client(server, tiny) as comfy:
        events = await run(comfy, t)
    assert isinstance(events[-1], Succeeded)
    assert outputs(events) == t.entry["outputs"]


async def test_following_needs_an_open_client(transcripts_dir: Path) -> None:
    t = load(transcripts_dir, "01_success")
    comfy = client(ReplayServer([t]))
    with pytest.raises(ComfyUIMisuse, match="open"):
        await comfy.follow(t.prompt_id, t.graph, deadline=0).__anext__()
    await comfy.aclose()
