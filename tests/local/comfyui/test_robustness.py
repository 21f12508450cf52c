"""Nothing a client sends, and no client going away, stops the emulator."""

from __future__ import annotations

import httpx
import pytest

from tests.local.comfyui._client import WsClient
from tests.local.comfyui.conftest import ComfyEmulator

TINY = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 5}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}
GARBAGE = [b"", b"{", b"[]", b"null", b"42", b'"text"', b'{"prompt": 5}', b'{"delete": 5, "clear": "yes"}', b"\xff\xfe"]
ROUTES = [
    ("POST", "/prompt"),
    ("POST", "/queue"),
    ("POST", "/history"),
    ("POST", "/interrupt"),
    ("POST", "/free"),
    ("POST", "/upload/image"),
    ("POST", "/upload/mask"),
    ("PATCH", "/internal/logs/subscribe"),
    ("POST", "/_emulator/faults"),
]


def _still_works(emulator: ComfyEmulator) -> None:
    with WsClient(emulator.ws_url, "check") as ws:
        response = httpx.post(emulator.url + "/prompt", json={"prompt": TINY, "client_id": "check"})
        ws.until_done(response.json()["prompt_id"])


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_malformed_bodies_get_an_answer(comfyui_emulator: ComfyEmulator, method: str, path: str) -> None:
    for body in GARBAGE:
        response = httpx.request(method, comfyui_emulator.url + path, content=body)
        assert response.status_code in (200, 400, 500), (path, body, response.status_code)
    _still_works(comfyui_emulator)


def test_odd_queries_and_prompts(comfyui_emulator: ComfyEmulator) -> None:
    url = comfyui_emulator.url
    assert httpx.get(url + "/history", params={"max_items": "many"}).status_code == 500
    odd_prompts = [
        {"prompt": {"1": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}},  # a node feeding itself
        {"prompt": {"1": {"class_type": "PreviewImage"}}},  # no inputs at all
        {"prompt": {"1": {"class_type": "PreviewImage", "inputs": {"images": [[], 0]}}}},
        {"prompt": TINY, "number": "first"},
        {"prompt": TINY, "extra_data": []},
    ]
    for body in odd_prompts:
        assert httpx.post(url + "/prompt", json=body).status_code in (400, 500)
    _still_works(comfyui_emulator)


def test_websocket_garbage_and_disconnects(comfyui_emulator: ComfyEmulator) -> None:
    with WsClient(comfyui_emulator.ws_url, "noisy") as ws:
        ws.conn.send("not json")
        ws.conn.send(b"\x00\x01binary")
        ws.conn.send('{"type": "feature_flags", "data": "not an object"}')
    comfyui_emulator.set_faults(hold_at="2")
    leaving = WsClient(comfyui_emulator.ws_url, "leaver")
    prompt_id = httpx.post(comfyui_emulator.url + "/prompt", json={"prompt": TINY, "client_id": "leaver"}).json()[
        "prompt_id"
    ]
    leaving.until_type("executing", node="2")
    leaving.close()
    comfyui_emulator.clear_faults()
    comfyui_emulator.release()
    with WsClient(comfyui_emulator.ws_url, "check") as ws:
        response = httpx.post(comfyui_emulator.url + "/prompt", json={"prompt": TINY, "client_id": "check"})
        ws.until_done(response.json()["prompt_id"])
    assert prompt_id in httpx.get(f"{comfyui_emulator.url}/history/{prompt_id}").json()
    for _ in range(20):
        WsClient(comfyui_emulator.ws_url).close()
    _still_works(comfyui_emulator)
