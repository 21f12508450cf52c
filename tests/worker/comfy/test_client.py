"""The async ComfyUI client against the project's ComfyUI emulator (a real HTTP + WebSocket server on port 0).

Faults come from the emulator's admin routes: ``hold_at`` parks a node (released by ``/_emulator/release`` or an
interrupt), ``error_at`` fails one, ``ws_drop_after`` / ``drop_websockets`` cut sockets, ``history_delay_calls``
hides a finished prompt from ``/history`` for a few requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.common import Backoff
from handlers.worker.comfy._client import ClientState, ComfyClient, Submission, prompt_id_for
from handlers.worker.comfy._config import ComfyLimits
from handlers.worker.comfy._errors import (
    ClientClosed,
    ComfyUICrashed,
    ComfyUIUnavailable,
    DeadlineExceeded,
    ExecutionFailed,
    PromptInterrupted,
    PromptNotApiFormat,
    PromptRejected,
    RequestRejected,
)
from handlers.worker.comfy._protocol import Adopted, Event, NodeStarted, Output, ProgressUpdate, Queued, Succeeded
from tests.local.comfyui.conftest import ComfyEmulator

pytestmark = [
    pytest.mark.timeout(60),
]

FAST = ComfyLimits(
    history_poll_interval=1.0,
    history_poll_interval_blind=0.05,
    reconnect=Backoff(base_s=0.02, cap_s=0.2, jitter=0),
    ready=Backoff(base_s=0.02, cap_s=0.1, jitter=0),
)

#: The graph of recording 01: EmptyImage -> ImageInvert -> ImageBlur -> SaveImage, plus a PreviewImage of node 1.
GRAPH: dict[str, Any] = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 16711680},
        "_meta": {"title": "Empty Image"},
    },
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "ImageBlur", "inputs": {"image": ["2", 0], "blur_radius": 3, "sigma": 1.0}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "probe/basic"}},
    "5": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}


def deadline(seconds: float = 30.0) -> float:
    return asyncio.get_running_loop().time() + seconds


@contextlib.asynccontextmanager
async def client_for(emulator: ComfyEmulator, **kwargs: Any) -> AsyncIterator[ComfyClient]:
    async with ComfyClient(emulator.url, client_id=kwargs.pop("client_id", "worker-1"), limits=FAST, **kwargs) as c:
        assert await c.wait_socket(deadline(10))
        yield c


async def collect(events: AsyncIterator[Event], until: Callable[[Event], bool] | None = None) -> list[Event]:
    seen: list[Event] = []
    async for event in events:
        seen.append(event)
        if until is not None and until(event):
            break
    return seen


def outputs(events: list[Event]) -> dict[str, Any]:
    return {e.node: e.ui for e in events if isinstance(e, Output)}


async def admin(emulator: ComfyEmulator, call: str, **kwargs: Any) -> Any:
    # The admin helpers are synchronous: run them off the loop so this client keeps reading its socket.
    return await asyncio.to_thread(getattr(emulator, call), **kwargs)


# ------------------------------------------------------------------------------------------------------------ runs


async def test_success_with_outputs(comfyui_emulator: ComfyEmulator, tmp_path: Path) -> None:
    async with client_for(comfyui_emulator) as comfy:
        stats = await comfy.system_stats()
        assert "system" in stats
        assert "EmptyImage" in await comfy.object_info()
        prompt_id = prompt_id_for("job-success")
        async with contextlib.aclosing(comfy.run_prompt(GRAPH, prompt_id, deadline=deadline())) as events:
            seen = await collect(events)
        assert isinstance(seen[0], Queued)
        assert isinstance(seen[-1], Succeeded)
        assert set(outputs(seen)) == {"4", "5"}
        assert outputs(seen) == dict(seen[-1].outputs)
        # Each output is reported once, as soon as its node finished, before the end.
        assert sum(isinstance(e, Output) for e in seen) == 2
        assert [e.percent for e in seen if isinstance(e, ProgressUpdate)][-1] == 100.0
        assert {e.node for e in seen if isinstance(e, NodeStarted)} == {"1", "2", "3", "4", "5"}
        saved = outputs(seen)["4"]["images"][0]
        dest = tmp_path / "out.png"
        size = await comfy.view_to_file(saved["filename"], saved["subfolder"], saved["type"], dest)
        on_disk = comfyui_emulator.data_dir / "output" / saved["subfolder"] / saved["filename"]
        assert dest.read_bytes() == on_disk.read_bytes()
        assert size == on_disk.stat().st_size
        assert not (tmp_path / "out.png.part").exists()


async def test_prompt_rejected_carries_comfyui_body(comfyui_emulator: ComfyEmulator) -> None:
    bad = {**GRAPH, "1": {"class_type": "EmptyImage", "inputs": {**GRAPH["1"]["inputs"], "width": "abc"}}}
    async with client_for(comfyui_emulator) as comfy:
        prompt_id = prompt_id_for("job-rejected")
        with pytest.raises(PromptRejected) as info:
            await collect(comfy.run_prompt(bad, prompt_id, deadline=deadline()))
        assert info.value.status == 400
        assert info.value.error["type"] == "prompt_outputs_failed_validation"
        assert info.value.node_errors["1"]["errors"][0]["type"] == "invalid_input_type"
        assert await comfy.history(prompt_id) == {}
        with pytest.raises(PromptNotApiFormat):
            await comfy.queue_prompt({"last_node_id": 1, "nodes": [], "links": []}, prompt_id_for("job-ui"))


async def test_execution_error(comfyui_emulator: ComfyEmulator) -> None:
    await admin(comfyui_emulator, "set_faults", error_at="3", error_message="boom at the blur")
    async with client_for(comfyui_emulator) as comfy:
        with pytest.raises(ExecutionFailed) as info:
            await collect(comfy.run_prompt(GRAPH, prompt_id_for("job-error"), deadline=deadline()))
        details = info.value.details
        assert (details.node_id, details.node_type) == ("3", "ImageBlur")
        assert "boom at the blur" in details.exception_message
        assert not info.value.retryable


async def test_socket_dropped_mid_prompt_completes(comfyui_emulator: ComfyEmulator) -> None:
    await admin(comfyui_emulator, "set_faults", hold_at="3")
    async with client_for(comfyui_emulator) as comfy:
        async with contextlib.aclosing(
            comfy.run_prompt(GRAPH, prompt_id_for("job-drop"), deadline=deadline())
        ) as events:
            seen = await collect(events, until=lambda e: isinstance(e, NodeStarted) and e.node == "3")
            assert await admin(comfyui_emulator, "drop_websockets") == 1
            await admin(comfyui_emulator, "release")
            seen += await collect(events)
        assert isinstance(seen[-1], Succeeded)
        assert set(outputs(seen)) == {"4", "5"}
        assert sum(isinstance(e, Output) for e in seen) == 2
        assert await comfy.wait_socket(deadline(10)), "the client reconnects"
        assert comfy.socket_connects == 2


async def test_socket_that_keeps_dropping(comfyui_emulator: ComfyEmulator) -> None:
    """Every socket is closed after 3 messages: the run still ends, through reconnects and /history."""
    await admin(comfyui_emulator, "set_faults", ws_drop_after=3)
    async with ComfyClient(comfyui_emulator.url, client_id="worker-1", limits=FAST) as comfy:
        seen = await collect(comfy.run_prompt(GRAPH, prompt_id_for("job-flaky"), deadline=deadline()))
    assert isinstance(seen[-1], Succeeded)
    assert set(outputs(seen)) == {"4", "5"}


async def test_delayed_history_is_waited_for(comfyui_emulator: ComfyEmulator) -> None:
    await admin(comfyui_emulator, "set_faults", history_delay_calls=3)
    async with client_for(comfyui_emulator) as comfy:
        seen = await collect(comfy.run_prompt(GRAPH, prompt_id_for("job-slow-history"), deadline=deadline()))
    assert isinstance(seen[-1], Succeeded)
    assert set(seen[-1].outputs) == {"4", "5"}


# --------------------------------------------------------------------------------------- cancel, deadline, adopt


async def _interrupted_in_history(comfy: ComfyClient, prompt_id: str) -> PromptInterrupted:
    """Follow the prompt again (a new follower) until ComfyUI reports how it ended."""
    with pytest.raises(PromptInterrupted) as info:
        await collect(comfy.follow(prompt_id, GRAPH, deadline=deadline()))
    # Interrupted by the first follower's cleanup, not by this follower's own deadline.
    assert not isinstance(info.value, DeadlineExceeded)
    return info.value


@pytest.mark.parametrize("busy", [False, True], ids=["between-events", "consumer-busy"])
async def test_cancel_interrupts_the_prompt(comfyui_emulator: ComfyEmulator, busy: bool) -> None:
    """Busy: the cancellation hits the caller's own await (an upload, say) and still interrupts, through
    aclosing()."""
    await admin(comfyui_emulator, "set_faults", hold_at="3")
    prompt_id = prompt_id_for("job-cancel-busy" if busy else "job-cancel")
    reached = asyncio.Event()

    async def job(comfy: ComfyClient) -> None:
        async with contextlib.aclosing(comfy.run_prompt(GRAPH, prompt_id, deadline=deadline())) as events:
            async for event in events:
                if isinstance(event, NodeStarted) and event.node == "3":
                    reached.set()
                    if busy:
                        await asyncio.Event().wait()  # "uploading" forever

    async with client_for(comfyui_emulator) as comfy:
        task = asyncio.create_task(job(comfy))
        await asyncio.wait_for(reached.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        interrupted = await _interrupted_in_history(comfy, prompt_id)
        assert interrupted.node_id is not None


async def test_deadline_interrupts_and_raises(comfyui_emulator: ComfyEmulator) -> None:
    await admin(comfyui_emulator, "set_faults", hold_at="3")
    prompt_id = prompt_id_for("job-deadline")
    async with client_for(comfyui_emulator) as comfy:
        with pytest.raises(DeadlineExceeded) as info:
            await collect(comfy.run_prompt(GRAPH, prompt_id, deadline=deadline(0.5)))
        assert info.value.prompt_id == prompt_id
        await _interrupted_in_history(comfy, prompt_id)


async def test_cancel_of_a_pending_prompt_removes_it_from_the_queue(comfyui_emulator: ComfyEmulator) -> None:
    await admin(comfyui_emulator, "set_faults", hold_at="3")
    first, second = prompt_id_for("job-first"), prompt_id_for("job-second")
    async with client_for(comfyui_emulator) as comfy:
        await comfy.queue_prompt(GRAPH, first)
        waiting = asyncio.Event()

        async def job() -> None:
            async with contextlib.aclosing(comfy.run_prompt(GRAPH, second, deadline=deadline())) as events:
                async for event in events:
                    if isinstance(event, Queued):
                        waiting.set()

        task = asyncio.create_task(job())
        await asyncio.wait_for(waiting.wait(), 30)
        pending = [item[1] for item in (await comfy.queue())["queue_pending"]]
        assert second in pending
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        queue = await comfy.queue()
        assert second not in [item[1] for item in queue["queue_pending"]]
        assert [item[1] for item in queue["queue_running"]] == [first]
        await admin(comfyui_emulator, "release")
        assert isinstance((await collect(comfy.follow(first, GRAPH, deadline=deadline())))[-1], Succeeded)
        assert await comfy.history(second) == {}


async def test_adopt_a_finished_prompt_does_not_run_it_again(comfyui_emulator: ComfyEmulator) -> None:
    prompt_id = prompt_id_for("job-retried")
    async with client_for(comfyui_emulator) as comfy:
        first = await collect(comfy.run_prompt(GRAPH, prompt_id, deadline=deadline()))
        again = await collect(comfy.run_prompt(GRAPH, prompt_id, deadline=deadline()))
        assert again[0] == Adopted(prompt_id, "finished")
        assert isinstance(again[-1], Succeeded)
        assert outputs(again) == outputs(first)
        number = (await comfy.history(prompt_id))[prompt_id]["prompt"][0]
        assert number == next(e for e in first if isinstance(e, Queued)).number
    saved = sorted(p.name for p in (comfyui_emulator.data_dir / "output" / "probe").iterdir())
    assert saved == ["basic_00001_.png"], "the prompt ran once"


async def test_adopt_a_running_prompt(comfyui_emulator: ComfyEmulator) -> None:
    await admin(comfyui_emulator, "set_faults", hold_at="3")
    prompt_id = prompt_id_for("job-adopt-running")
    async with client_for(comfyui_emulator) as comfy:
        await comfy.queue_prompt(GRAPH, prompt_id)
        async with contextlib.aclosing(comfy.run_prompt(GRAPH, prompt_id, deadline=deadline())) as events:
            adopted = await collect(events, until=lambda e: isinstance(e, Adopted))
            assert adopted[-1] in (Adopted(prompt_id, "running"), Adopted(prompt_id, "pending"))
            await admin(comfyui_emulator, "release")
            rest = await collect(events)
        assert isinstance(rest[-1], Succeeded)
        assert set(outputs(adopted + rest)) == {"4", "5"}


async def test_a_failed_prompt_is_run_again_on_retry(comfyui_emulator: ComfyEmulator) -> None:
    await admin(comfyui_emulator, "set_faults", error_at="3")
    prompt_id = prompt_id_for("job-retry-after-error")
    async with client_for(comfyui_emulator) as comfy:
        with pytest.raises(ExecutionFailed):
            await collect(comfy.run_prompt(GRAPH, prompt_id, deadline=deadline()))
        await admin(comfyui_emulator, "clear_faults")
        submission = await comfy.adopt_or_queue(prompt_id, GRAPH)
        assert submission.found == "queued"
        assert isinstance((await collect(comfy.follow(prompt_id, GRAPH, deadline=deadline())))[-1], Succeeded)


async def test_a_prompt_lost_by_comfyui_is_reported_crashed(comfyui_emulator: ComfyEmulator) -> None:
    """ComfyUI restarted (here: the emulator's reset) while the prompt waited: it is in neither queue nor history."""
    await admin(comfyui_emulator, "set_faults", hold_at="3")
    async with client_for(comfyui_emulator) as comfy:
        await comfy.queue_prompt(GRAPH, prompt_id_for("job-ahead"))
        lost = prompt_id_for("job-lost")
        async with contextlib.aclosing(comfy.run_prompt(GRAPH, lost, deadline=deadline())) as events:
            await collect(events, until=lambda e: isinstance(e, Queued))
            await admin(comfyui_emulator, "reset")
            with pytest.raises(ComfyUICrashed) as info:
                await collect(events)
        assert info.value.prompt_id == lost
        assert info.value.retryable


# ------------------------------------------------------------------------------------------------- plain HTTP calls


async def test_upload_and_view(comfyui_emulator: ComfyEmulator, tmp_path: Path) -> None:
    png = (comfyui_emulator.data_dir / "probe.png").resolve()
    async with client_for(comfyui_emulator) as comfy:
        seen = await collect(comfy.run_prompt(GRAPH, prompt_id_for("job-upload"), deadline=deadline()))
        image = outputs(seen)["4"]["images"][0]
        await comfy.view_to_file(image["filename"], image["subfolder"], image["type"], png)
        uploaded = await comfy.upload_image("ref.png", png.read_bytes(), subfolder="job-upload")
        assert uploaded == {"name": "ref.png", "subfolder": "job-upload", "type": "input"}
        assert (comfyui_emulator.data_dir / "input" / "job-upload" / "ref.png").read_bytes() == png.read_bytes()
        back = tmp_path / "back.png"
        await comfy.view_to_file("ref.png", "job-upload", "input", back)
        assert back.read_bytes() == png.read_bytes()
        with pytest.raises(RequestRejected) as info:
            await comfy.view_to_file("missing.png", "", "output", tmp_path / "missing.png")
        assert info.value.status == 404
        assert not (tmp_path / "missing.png").exists()
        assert not (tmp_path / "missing.png.part").exists()
        await comfy.delete_from_queue(["not-queued"])
        await comfy.interrupt("not-running")


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host, port = s.getsockname()
    return f"http://{host}:{port}"


async def test_unreachable_comfyui() -> None:
    async with ComfyClient(_closed_port(), client_id="worker-1", limits=FAST) as comfy:
        with pytest.raises(ComfyUIUnavailable, match="not ready by the deadline"):
            await comfy.wait_ready(deadline(0.3))
        with pytest.raises(ComfyUIUnavailable) as info:
            await comfy.queue_prompt(GRAPH, prompt_id_for("job-nowhere"))
        assert info.value.retryable
        assert not comfy.socket_connected


async def test_5xx_is_unavailable_and_injected_transport_is_used() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="warming up")

    async def no_socket(url: str) -> Any:
        raise ConnectionRefusedError(url)

    comfy = ComfyClient(
        "http://comfy.invalid:8188", client_id="w", http=httpx.MockTransport(handler), ws_connect=no_socket
    )
    async with comfy:
        with pytest.raises(ComfyUIUnavailable, match="HTTP 503"):
            await comfy.history("p")
    assert comfy.state is ClientState.CLOSED
    with pytest.raises(ClientClosed):
        await comfy.queue()


async def test_submission_rejected_outputs() -> None:
    answer = {"prompt_id": "p", "number": 1, "node_errors": {"4": {"dependent_outputs": ["5"], "errors": []}}}
    assert Submission("p", "queued", answer).rejected_outputs == {"5"}
