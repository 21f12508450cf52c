"""ComfyUI's HTTP routes as recorded in transcript 70 (and 42 for the queue), served by the emulator."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.local.comfyui._client import WsClient, summary
from tests.local.comfyui._recordings import load
from tests.local.comfyui.conftest import ComfyEmulator

TINY = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 5}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}


def _png(color: tuple[int, ...], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _finish(emulator: ComfyEmulator, body: dict[str, Any]) -> dict[str, Any]:
    """Post a prompt, wait for its end marker, return the POST answer."""
    client_id = body.get("client_id", "waiter")
    with WsClient(emulator.ws_url, client_id) as ws:
        response = httpx.post(emulator.url + "/prompt", json={"client_id": client_id, **body})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        ws.until_done(answer["prompt_id"])
    return answer


@pytest.fixture
def recorded(transcripts_dir: Path) -> dict[str, Any]:
    return load(transcripts_dir, "70_http_endpoints")


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_simple_routes_match_the_recording(
    comfyui_emulator: ComfyEmulator, recorded: dict[str, Any], prefix: str
) -> None:
    url = comfyui_emulator.url + prefix
    for route in ("/features", "/prompt", "/queue", "/embeddings", "/models"):
        response = httpx.get(url + route)
        seen = recorded[f"GET {route}"]
        assert (response.status_code, response.headers["content-type"]) == (seen["status"], seen["content_type"])
        # The recorded server had no custom node packs; the emulator has the library's, and their model folders.
        expected = seen["json"] + ["ipadapter", "pulid"] if route == "/models" else seen["json"]
        assert response.json() == expected
    assert httpx.get(url + "/models/checkpoints").json() == ["tiny-sd15-random.safetensors"]
    assert httpx.get(url + "/models/pulid").json() == []
    missing = httpx.get(url + "/models/nonexistent")
    assert (missing.status_code, missing.content, "content-type" in missing.headers) == (404, b"", False)
    for name in ("NoSuch", "PrimitiveNode"):
        assert httpx.get(f"{url}/object_info/{name}").json() == {}
    assert (
        httpx.get(url + "/object_info/ImageInvert").json()
        == recorded["GET /api/object_info/ImageInvert (api prefix)"]["json"]
    )
    stats = httpx.get(url + "/system_stats").json()
    seen_stats = recorded["GET /system_stats"]["json"]
    assert stats["system"].keys() == seen_stats["system"].keys()
    assert stats["devices"][0].keys() == seen_stats["devices"][0].keys()
    assert stats["system"]["comfyui_version"] == "0.3.64"


def test_wrong_methods_and_unknown_routes(comfyui_emulator: ComfyEmulator, recorded: dict[str, Any]) -> None:
    url = comfyui_emulator.url
    for label in (
        "DELETE /queue",
        "DELETE /history",
        "DELETE /prompt",
        "DELETE /history/x",
        "DELETE /interrupt",
        "PUT /prompt",
    ):
        method, path = label.split(" ")
        for prefix in ("", "/api"):
            response = httpx.request(method, url + prefix + path, json={"x": 1})
            assert (response.status_code, response.text) == (405, recorded[label]["text"])
    interrupt = httpx.get(url + "/interrupt")
    assert (interrupt.status_code, interrupt.content) == (404, b"")
    assert interrupt.headers["content-type"] == recorded["GET /interrupt"]["content_type"]
    assert httpx.get(url + "/no/such/route").status_code == 404
    assert httpx.post(url + "/no/such/route").status_code == 405


def test_origin_check_and_bad_bodies(comfyui_emulator: ComfyEmulator, recorded: dict[str, Any]) -> None:
    url = comfyui_emulator.url
    port = url.rsplit(":", 1)[1]
    refused = httpx.post(url + "/prompt", json={"prompt": {}}, headers={"Origin": "http://evil.example"})
    assert (refused.status_code, refused.content) == (403, b"")
    same = httpx.post(url + "/prompt", json={"prompt": {}}, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert (same.status_code, same.json()) == (400, recorded["POST /prompt with Origin matching"]["json"])
    broken = httpx.post(url + "/prompt", content=b"{not json", headers={"Content-Type": "application/json"})
    seen = recorded["POST /prompt invalid JSON body"]
    assert (broken.status_code, broken.headers["content-type"], broken.text) == (
        500,
        seen["content_type"],
        seen["text"],
    )
    for path in ("/interrupt", "/queue"):
        response = httpx.post(url + path, content=b"" if path == "/interrupt" else b"{}")
        assert (response.status_code, response.content) == (200, b"")


def test_prompt_options_and_history_routes(comfyui_emulator: ComfyEmulator, recorded: dict[str, Any]) -> None:
    url = comfyui_emulator.url
    seen = recorded["POST /prompt with explicit prompt_id + number + extra_data"]
    answer = _finish(comfyui_emulator, seen["request_json"])
    assert answer == seen["json"]
    entry = httpx.get(url + "/history/my-own-id-123").json()["my-own-id-123"]
    expected = recorded["GET /history/my-own-id-123"]["json"]["my-own-id-123"]
    assert entry["prompt"] == expected["prompt"]
    assert list(entry["prompt"][3]) == ["extra_pnginfo", "client_id"]

    partial = recorded["POST /prompt partial_execution_targets"]["request_json"]
    partial_id = _finish(comfyui_emulator, partial)["prompt_id"]
    assert httpx.get(f"{url}/history/{partial_id}").json()[partial_id]["prompt"][4] == ["2"]

    third = _finish(comfyui_emulator, {"prompt": TINY, "extra_data": {"api_key_comfy_org": "secret", "x": 1}})[
        "prompt_id"
    ]
    assert httpx.get(f"{url}/history/{third}").json()[third]["prompt"][3] == {"x": 1, "client_id": "waiter"}
    assert list(httpx.get(url + "/history").json()) == ["my-own-id-123", partial_id, third]
    assert list(httpx.get(url + "/history", params={"max_items": 2}).json()) == [partial_id, third]
    assert list(httpx.get(url + "/history", params={"offset": 1, "max_items": 1}).json()) == [partial_id]
    assert httpx.get(url + "/history/unknown-id").json() == {}
    deleted = httpx.post(url + "/history", json={"delete": [partial_id]})
    assert (deleted.status_code, deleted.content) == (200, b"")
    assert httpx.get(f"{url}/history/{partial_id}").json() == {}
    httpx.post(url + "/history", json={"clear": True})
    assert httpx.get(url + "/history").json() == {}


def test_uploads_and_view(comfyui_emulator: ComfyEmulator, recorded: dict[str, Any]) -> None:
    url = comfyui_emulator.url

    def upload(data: bytes, name: str = "probe_upload.png", **fields: str) -> httpx.Response:
        return httpx.post(url + "/upload/image", files={"image": (name, data, "image/png")}, data=fields)

    red, blue = _png((255, 0, 0)), _png((0, 0, 255))
    answers = [upload(red), upload(red), upload(blue), upload(red, overwrite="true")]
    answers += [upload(red, "sub.png", subfolder="probe_sub", type="input"), upload(red, "t.png", type="temp")]
    labels = [
        "new",
        "same bytes again",
        "same name, different bytes",
        "overwrite=true",
        "subfolder, type=input",
        "type=temp",
    ]
    assert [a.json() for a in answers] == [recorded[f"POST /upload/image ({label})"]["json"] for label in labels]
    assert upload(red, subfolder="../../etc").status_code == 400
    assert httpx.post(url + "/upload/image", files={"other": ("x.png", red, "image/png")}).status_code == 400
    combo = httpx.get(url + "/object_info/LoadImage").json()["LoadImage"]["input"]["required"]["image"][0]
    # As recorded: only the top level of input/ is listed (a subfolder file is still accepted by name).
    assert {"probe_upload.png", "probe_upload (1).png"} <= set(combo) and "probe_sub/sub.png" not in combo

    view = httpx.get(url + "/view", params={"filename": "probe_upload.png", "type": "input", "subfolder": ""})
    assert (view.status_code, view.headers["content-type"], view.content) == (200, "image/png", red)
    annotated = httpx.get(url + "/view", params={"filename": "probe_upload.png [input]"})
    assert annotated.content == red
    for params, content_type in (({"preview": "webp;50"}, "image/webp"), ({"preview": "jpeg;90"}, "image/jpeg")):
        preview = httpx.get(url + "/view", params={"filename": "probe_upload.png", "type": "input", **params})
        assert preview.headers["content-type"] == content_type
    for channel, mode in (("rgb", "RGB"), ("a", "RGBA")):
        response = httpx.get(
            url + "/view", params={"filename": "probe_upload.png", "type": "input", "channel": channel}
        )
        with Image.open(io.BytesIO(response.content)) as img:
            assert img.mode == mode
    cases = {
        "GET /view missing": {"filename": "nope.png", "type": "output", "subfolder": ""},
        "GET /view no filename": {},
        "GET /view filename with ..": {"filename": "../x.png", "type": "output"},
        "GET /view subfolder traversal": {"filename": "x.png", "type": "output", "subfolder": "../../etc"},
        "GET /view bad type": {"filename": "x.png", "type": "bogus"},
    }
    for label, params in cases.items():
        response = httpx.get(url + "/view", params=params)
        assert (response.status_code, response.content) == (recorded[label]["status"], b"")


def test_upload_mask_applies_alpha(comfyui_emulator: ComfyEmulator) -> None:
    url = comfyui_emulator.url
    httpx.post(url + "/upload/image", files={"image": ("base.png", _png((10, 20, 30)), "image/png")})
    mask = _png((0, 0, 0, 0), mode="RGBA")
    ref = '{"filename": "base.png", "subfolder": "", "type": "input"}'
    answer = httpx.post(
        url + "/upload/mask", files={"image": ("masked.png", mask, "image/png")}, data={"original_ref": ref}
    )
    assert answer.json() == {"name": "masked.png", "subfolder": "", "type": "input"}
    with Image.open(comfyui_emulator.data_dir / "input" / "masked.png") as img:
        assert img.mode == "RGBA" and img.getpixel((0, 0)) == (10, 20, 30, 0)


def test_queue_operations_touch_pending_prompts_only(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    recording = load(transcripts_dir, "42_queue_ops")
    url = comfyui_emulator.url
    comfyui_emulator.set_faults(hold_at="10")
    with WsClient(comfyui_emulator.ws_url, "probe-interrupt") as ws:
        ids = []
        for post in recording["posts"]:
            answer = httpx.post(url + "/prompt", json=post["request_json"]).json()
            ids.append(answer["prompt_id"])
            if not ids[1:]:
                ws.until_type("executing", node="10")
        assert answer["number"] == -3  # front: the counter's value, negated

        def queue() -> list[list[Any]]:
            body = httpx.get(url + "/queue").json()
            return [[item[1] for item in body[key]] for key in ("queue_running", "queue_pending")]

        assert queue() == [[ids[0]], [ids[3], ids[2], ids[1]]]  # heap order, as recorded
        assert httpx.get(url + "/prompt").json() == recording["GET_prompt"]["json"]
        httpx.post(url + "/queue", json={"delete": [ids[1]]})
        assert queue() == [[ids[0]], [ids[3], ids[2]]]
        httpx.post(url + "/queue", json={"clear": True})
        assert queue() == [[ids[0]], []]
        comfyui_emulator.set_faults(hold_at="11")
        comfyui_emulator.release()
        ws.until_type("executing", node="11")
        httpx.post(url + "/interrupt", json={})
        ws.until_done(ids[0])
        assert queue() == [[], []]
    types = summary(ws.frames[1:])
    assert [t for t in types if not t.startswith("status")] == [
        t for t in recording["ws_types"] if not t.startswith("status")
    ]
    assert [t for t in types if t.startswith("status")] == [t for t in recording["ws_types"] if t.startswith("status")]


def test_free_memory_empties_the_cache(comfyui_emulator: ComfyEmulator) -> None:
    _finish(comfyui_emulator, {"prompt": TINY})
    response = httpx.post(comfyui_emulator.url + "/free", json={"unload_models": True, "free_memory": True})
    assert (response.status_code, response.content) == (200, b"")
    with WsClient(comfyui_emulator.ws_url, "after-free") as ws:
        prompt_id = httpx.post(
            comfyui_emulator.url + "/prompt", json={"prompt": TINY, "client_id": "after-free"}
        ).json()["prompt_id"]
        frames = ws.until_done(prompt_id)
    cached = next(f for f in frames if isinstance(f, dict) and f["type"] == "execution_cached")
    assert cached["data"]["nodes"] == []


def test_internal_routes(comfyui_emulator: ComfyEmulator) -> None:
    url = comfyui_emulator.url
    _finish(comfyui_emulator, {"prompt": TINY})
    raw = httpx.get(url + "/internal/logs/raw").json()
    assert [e["m"] for e in raw["entries"]][:2] == ["got prompt\n", raw["entries"][1]["m"]]
    assert raw["entries"][1]["m"].startswith("Prompt executed in ")
    assert "got prompt" in httpx.get(url + "/internal/logs").json()
    assert "checkpoints" in httpx.get(url + "/internal/folder_paths").json()
    temp_files = httpx.get(url + "/internal/files/temp").json()
    assert len(temp_files) == 1 and temp_files[0].endswith(".png")
    assert httpx.get(url + "/internal/files/bogus").status_code == 400
