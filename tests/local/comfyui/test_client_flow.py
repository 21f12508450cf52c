"""A user-style client (httpx + websockets, nothing from the emulator): upload, prompt, events, history, view."""

from __future__ import annotations

import io
import json
import uuid

import httpx
from PIL import Image
from websockets.sync.client import connect

from tests.local.comfyui.conftest import ComfyEmulator


def test_upload_prompt_events_history_view(comfyui_emulator: ComfyEmulator) -> None:
    base = comfyui_emulator.url
    client_id = uuid.uuid4().hex
    source = io.BytesIO()
    Image.new("RGB", (6, 4), (10, 200, 30)).save(source, format="PNG")
    uploaded = httpx.post(base + "/upload/image", files={"image": ("me.png", source.getvalue(), "image/png")}).json()
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": uploaded["name"]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "flow/out"}},
    }
    events: list[dict[str, object]] = []
    with connect(f"ws{base.removeprefix('http')}/ws?clientId={client_id}", open_timeout=20) as ws:
        assert json.loads(ws.recv(timeout=20))["data"]["sid"] == client_id
        answer = httpx.post(base + "/prompt", json={"prompt": prompt, "client_id": client_id}).json()
        prompt_id = answer["prompt_id"]
        while True:
            message = ws.recv(timeout=20)
            if isinstance(message, bytes):
                continue
            event = json.loads(message)
            events.append(event)
            if event["type"] == "executing" and event["data"]["node"] is None:
                break
    kinds = [e["type"] for e in events]
    assert kinds[0] == "status" and kinds[-3:] == ["execution_success", "status", "executing"]
    executed = [e["data"] for e in events if e["type"] == "executed"]
    assert [e["node"] for e in executed] == ["3"]  # type: ignore[index]
    history = httpx.get(f"{base}/history/{prompt_id}").json()[prompt_id]
    assert history["status"]["completed"] is True
    image = history["outputs"]["3"]["images"][0]
    assert image == {"filename": "out_00001_.png", "subfolder": "flow", "type": "output"}
    view = httpx.get(base + "/view", params=image)
    with Image.open(io.BytesIO(view.content)) as saved:
        assert saved.size == (6, 4) and saved.convert("RGB").getpixel((0, 0)) == (245, 55, 225)
