"""Fault injection through the admin routes (the CLI flags set the same state; see test_cli.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.local.comfyui._client import WsClient, summary
from tests.local.comfyui.conftest import ComfyEmulator

TINY = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 5}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}


def _post(emulator: ComfyEmulator, client_id: str) -> str:
    response = httpx.post(emulator.url + "/prompt", json={"prompt": TINY, "client_id": client_id})
    assert response.status_code == 200
    prompt_id: str = response.json()["prompt_id"]
    return prompt_id


def _finished(emulator: ComfyEmulator, client_id: str = "c") -> str:
    with WsClient(emulator.ws_url, client_id) as ws:
        prompt_id = _post(emulator, client_id)
        ws.until_done(prompt_id)
    return prompt_id


def test_admin_route_validates_and_reports(comfyui_emulator: ComfyEmulator) -> None:
    url = comfyui_emulator.url + "/_emulator/faults"
    defaults = httpx.get(url).json()
    assert defaults["error_at"] is None and defaults["ws_drop_after"] is None
    assert comfyui_emulator.set_faults(error_at="KSampler", ws_drop_after=5)["error_at"] == "KSampler"
    for bad in ({"bogus": 1}, {"ws_drop_after": -1}, {"history_delay_seconds": "soon"}, {"error_at": ""}):
        response = httpx.post(url, json=bad)
        assert response.status_code == 400 and response.json()["error"]
    assert httpx.post(url, content=b"[not json").status_code == 400
    assert httpx.get(url).json()["ws_drop_after"] == 5  # a refused change leaves the rest alone
    assert comfyui_emulator.clear_faults() == defaults


def test_error_at_a_node(comfyui_emulator: ComfyEmulator) -> None:
    comfyui_emulator.set_faults(error_at="EmptyImage", error_message="disk on fire")
    with WsClient(comfyui_emulator.ws_url, "c") as ws:
        prompt_id = _post(comfyui_emulator, "c")
        frames = ws.until_done(prompt_id)
    assert summary(frames)[-4:] == ["executing(1)", "execution_error", "status(q=0)", "executing(None)"]
    error = next(f for f in frames if isinstance(f, dict) and f["type"] == "execution_error")["data"]
    assert (error["node_id"], error["exception_type"], error["exception_message"]) == (
        "1",
        "RuntimeError",
        "disk on fire",
    )
    status = httpx.get(f"{comfyui_emulator.url}/history/{prompt_id}").json()[prompt_id]["status"]
    assert (status["status_str"], status["completed"]) == ("error", False)
    comfyui_emulator.clear_faults()
    _finished(comfyui_emulator)


def test_websocket_dropped_after_n_messages_and_the_prompt_still_finishes(comfyui_emulator: ComfyEmulator) -> None:
    comfyui_emulator.set_faults(ws_drop_after=3, hold_at="2")
    with WsClient(comfyui_emulator.ws_url, "c") as ws:
        prompt_id = _post(comfyui_emulator, "c")
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv()
        assert len(ws.frames) == 3
    comfyui_emulator.clear_faults()
    with WsClient(comfyui_emulator.ws_url, "c") as again:
        assert again.recv() == {"type": "executing", "data": {"node": "2"}}
        comfyui_emulator.release()
        again.until_done(prompt_id)
    assert prompt_id in httpx.get(f"{comfyui_emulator.url}/history/{prompt_id}").json()


def test_drop_every_socket_now(comfyui_emulator: ComfyEmulator) -> None:
    with WsClient(comfyui_emulator.ws_url, "a") as a, WsClient(comfyui_emulator.ws_url, "b") as b:
        assert comfyui_emulator.drop_websockets() == 2
        for ws in (a, b):
            with pytest.raises(ConnectionClosed):
                ws.recv()


@pytest.mark.parametrize("fault", [{"history_delay_calls": 2}, {"history_delay_seconds": 3600}])
def test_history_delayed(comfyui_emulator: ComfyEmulator, fault: dict[str, Any]) -> None:
    comfyui_emulator.set_faults(**fault)
    prompt_id = _finished(comfyui_emulator)
    url = f"{comfyui_emulator.url}/history/{prompt_id}"
    assert [httpx.get(url).json(), httpx.get(url).json()] == [{}, {}]
    if "history_delay_seconds" in fault:
        assert prompt_id not in httpx.get(comfyui_emulator.url + "/history").json()
        comfyui_emulator.clear_faults()
    assert prompt_id in httpx.get(url).json()


def test_reset_forgets_history_faults_and_cache(comfyui_emulator: ComfyEmulator) -> None:
    prompt_id = _finished(comfyui_emulator)
    comfyui_emulator.set_faults(error_at="nothing-matches")
    comfyui_emulator.reset()
    assert httpx.get(comfyui_emulator.url + "/history").json() == {}
    assert httpx.get(comfyui_emulator.url + "/_emulator/faults").json()["error_at"] is None
    with WsClient(comfyui_emulator.ws_url, "c") as ws:
        again = _post(comfyui_emulator, "c")
        frames = ws.until_done(again)
    assert again != prompt_id
    assert next(f for f in frames if isinstance(f, dict) and f["type"] == "execution_cached")["data"]["nodes"] == []
