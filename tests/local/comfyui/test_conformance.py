"""Replays the recordings of a real ComfyUI 0.3.64 against the emulator and compares what a client sees.

Message types, their order and routing (``ws_types``), HTTP bodies and history entries must match, with prompt ids,
timestamps, tracebacks and random temp-file prefixes normalised. A scenario whose graph needs a node the emulator
does not implement is skipped with the missing class names.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from handlers.local.comfyui._nodes import NODE_CLASSES
from tests.local.comfyui._client import Frame, WsClient, summary
from tests.local.comfyui._recordings import classes_in, history_entry, load, normalise
from tests.local.comfyui.conftest import ComfyEmulator

Factory = Callable[..., ComfyEmulator]


def _need_nodes(recording: dict[str, Any]) -> None:
    missing = sorted(classes_in(recording["post_prompt"]["request_json"]) - set(NODE_CLASSES))
    if missing:
        pytest.skip(f"{recording['name']}: the emulator has no {', '.join(missing)}")


def _uses_flags(recording: dict[str, Any]) -> bool:
    greeting = recording.get("ws_on_connect") or []
    return "flags" in recording["name"] or any(m["msg"].get("type") == "feature_flags" for m in greeting)


def _request(recording: dict[str, Any]) -> dict[str, Any]:
    """The recorded request, with the output nodes first in the order the real server ran them.

    The real server keeps its outputs in a ``set``: their order (which decides the execution order) follows string
    hashes, salted per process. The emulator takes them in prompt order, so listing them first in the recorded
    ``outputs_to_execute`` order reproduces the recorded run.
    """
    request: dict[str, Any] = recording["post_prompt"]["request_json"]
    history = (recording.get("history") or {}).get("json") or {}
    if not history:
        return request
    outputs = next(iter(history.values()))["prompt"][4]
    prompt = request["prompt"]
    if [k for k in prompt if k in outputs] == outputs:
        return request  # already in prompt order; keep the node order execution_cached reports
    ordered = {k: prompt[k] for k in outputs} | {k: v for k, v in prompt.items() if k not in outputs}
    return {**request, "prompt": ordered}


def _run(emulator: ComfyEmulator, recording: dict[str, Any]) -> tuple[str, list[Frame], dict[str, Any]]:
    """Post the recorded request with its client listening; return the prompt id, its frames and the POST body."""
    with WsClient(emulator.ws_url, recording["client_id"], feature_flags=_uses_flags(recording)) as ws:
        response = httpx.post(emulator.url + "/prompt", json=_request(recording), timeout=20)
        assert response.status_code == recording["post_prompt"]["status"], response.text
        body: dict[str, Any] = response.json()
        frames = ws.until_done(body["prompt_id"])
    return body["prompt_id"], frames, body


def _check_run(emulator: ComfyEmulator, recording: dict[str, Any]) -> list[Frame]:
    prompt_id, frames, body = _run(emulator, recording)
    recorded_id = recording["post_prompt"]["json"]["prompt_id"]
    assert summary(frames) == recording["ws_types"]
    assert normalise(body["node_errors"]) == normalise(recording["post_prompt"]["json"]["node_errors"])
    history = httpx.get(f"{emulator.url}/history/{prompt_id}", timeout=10).json()
    assert history_entry(history, prompt_id) == history_entry(recording["history"]["json"], recorded_id)
    recorded_frames = [m["msg"] for m in recording["ws"] if not m["msg"].get("binary")]
    ours = [f for f in frames if isinstance(f, dict)]
    assert [normalise(f, prompt_id) for f in ours] == [normalise(f, recorded_id) for f in recorded_frames]
    return frames


SEQUENCES = {
    "basic_and_cache": ["01_success", "02_cached_identical", "02b_partial_cache"],
    "error_then_good": ["30_exec_error_alloc", "31_after_error_good"],
    "ksampler_legacy_client": ["80_ksampler_latent2rgb_first", "81_ksampler_latent2rgb_warm"],
    "upscale_model_legacy_client": ["82_upscale_model_latent2rgb"],
    "preview_legacy_client": ["50_ws_image_legacy_client"],
    "output_kinds": ["03_output_kinds"],
    "colon_ids_and_wrapped_values": ["90_colon_ids_and___value__"],
    "extra_unknown_input": ["93_extra_unknown_input"],
    "coercion": ["94_coercion"],
    "text_frame": ["95_progress_text_GetImageSize"],
    "png_metadata": ["99_png_metadata"],
}


@pytest.mark.parametrize("names", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_recorded_runs(transcripts_dir: Path, comfyui_emulator_factory: Factory, names: list[str]) -> None:
    recordings = [load(transcripts_dir, name) for name in names]
    for recording in recordings:
        _need_nodes(recording)
    emulator = comfyui_emulator_factory()
    for recording in recordings:
        _check_run(emulator, recording)


def test_preview_frames_match_their_recorded_shape(transcripts_dir: Path, comfyui_emulator_factory: Factory) -> None:
    """Type-1 frames for a client without flags (after ``progress``), type 4 with metadata for one with them."""
    for name, expected_type in (("80_ksampler_latent2rgb_first", 1), ("80_ksampler_latent2rgb_flags_first", 4)):
        recording = load(transcripts_dir, name)
        _need_nodes(recording)
        prompt_id, frames, _ = _run(comfyui_emulator_factory(), recording)
        binaries = [f for f in frames if isinstance(f, bytes)]
        recorded = [m["msg"] for m in recording["ws"] if m["msg"].get("binary")]
        assert len(binaries) == len(recorded) > 0
        for frame, seen in zip(binaries, recorded, strict=True):
            assert struct.unpack(">I", frame[:4])[0] == seen["event_type"] == expected_type
            if expected_type == 1:
                assert struct.unpack(">I", frame[4:8])[0] == seen["image_format"]
                assert frame[8:10] == bytes.fromhex("ffd8")
            else:
                (length,) = struct.unpack(">I", frame[4:8])
                metadata = json.loads(frame[8 : 8 + length])
                assert normalise(metadata, prompt_id) == normalise(seen["metadata"], seen["metadata"]["prompt_id"])
                assert frame[8 + length : 10 + length] == bytes.fromhex("ffd8")


def test_partial_validation_runs_only_the_valid_outputs(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    """Transcript 18: HTTP 200 with the bad output's node_errors, and only the valid outputs run."""
    recording = load(transcripts_dir, "18_validation_partial_ok")
    _need_nodes(recording)
    _check_run(comfyui_emulator, recording)


@pytest.mark.parametrize(
    "name",
    [
        "10_validation_bad_int",
        "11_validation_missing_class",
        "12_validation_required_missing",
        "13_validation_above_max",
        "14_validation_combo_not_in_list",
        "15_validation_type_mismatch_link",
        "16_validation_no_outputs",
        "17_validation_loadimage_missing_file",
        "19_validation_bad_link",
        "20_validation_no_class_type",
        "21_validation_no_prompt_key",
        "91_int_link_id",
        "92_ui_format_posted",
    ],
)
def test_validation_bodies_and_no_messages(transcripts_dir: Path, comfyui_emulator: ComfyEmulator, name: str) -> None:
    recording = load(transcripts_dir, name)
    post = recording.get("post_prompt", recording)
    missing = sorted(classes_in(post["request_json"]) - set(NODE_CLASSES) - {"NoSuchNode"})
    if missing and name != "92_ui_format_posted":
        pytest.skip(f"{name}: the emulator has no {', '.join(missing)}")
    with WsClient(comfyui_emulator.ws_url, "probe-errors") as ws:
        response = httpx.post(comfyui_emulator.url + "/prompt", json=post["request_json"], timeout=20)
        assert response.status_code == post["status"]
        assert response.headers["content-type"] == post["content_type"]
        if post["status"] == 500:
            assert response.text == post["text"]
        else:
            assert normalise(response.json()) == normalise(post["json"])
        # Nothing was queued, so nothing is sent: the next message is the status of a prompt posted now.
        probe = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}
        probe["2"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
        httpx.post(comfyui_emulator.url + "/prompt", json={"prompt": probe, "client_id": "probe-errors"}, timeout=20)
        assert summary([ws.recv()]) == ["status(q=1)"]


def test_two_clients_only_the_owner_gets_prompt_messages(
    transcripts_dir: Path, comfyui_emulator: ComfyEmulator
) -> None:
    recording = load(transcripts_dir, "52_two_clients")
    _need_nodes(recording)
    with WsClient(comfyui_emulator.ws_url, "someone-else") as other:
        _prompt_id, frames, _ = _run(comfyui_emulator, recording)
        assert summary(frames) == recording["ws_types"]
        seen = other.until_type("status", timeout=10, status={"exec_info": {"queue_remaining": 0}})
        assert summary(seen) == recording["other_client_ws_types"]


def test_prompt_without_client_id_sends_only_status_and_progress_state(
    transcripts_dir: Path, comfyui_emulator: ComfyEmulator
) -> None:
    recording = load(transcripts_dir, "53_no_client_id")
    _need_nodes(recording)
    with WsClient(comfyui_emulator.ws_url, "listener") as ws:
        response = httpx.post(comfyui_emulator.url + "/prompt", json=recording["post_prompt"]["request_json"])
        prompt_id = response.json()["prompt_id"]
        frames = ws.until_type("status", status={"exec_info": {"queue_remaining": 0}})
    assert summary(frames) == recording["ws_types_A"]
    history = httpx.get(f"{comfyui_emulator.url}/history/{prompt_id}").json()
    recorded_id = recording["post_prompt"]["json"]["prompt_id"]
    assert history_entry(history, prompt_id) == history_entry(recording["history"]["json"], recorded_id)


def test_text_frames_are_broadcast(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    recording = load(transcripts_dir, "95_progress_text_GetImageSize")
    _need_nodes(recording)
    with WsClient(comfyui_emulator.ws_url, "other") as other:
        _, frames, _ = _run(comfyui_emulator, recording)
        seen = other.until_type("status", status={"exec_info": {"queue_remaining": 0}})
    assert summary(seen) == recording["other_client_ws_types"]
    text = next(f for f in frames if isinstance(f, bytes))
    (length,) = struct.unpack(">I", text[4:8])
    expected = next(m["msg"] for m in recording["ws"] if m["msg"].get("binary"))
    assert (text[8 : 8 + length].decode(), text[8 + length :].decode()) == (expected["node_id"], expected["text"])
    assert len(text) == expected["len"]


def _post(emulator: ComfyEmulator, request: dict[str, Any]) -> str:
    response = httpx.post(emulator.url + "/prompt", json=request, timeout=20)
    assert response.status_code == 200, response.text
    prompt_id: str = response.json()["prompt_id"]
    return prompt_id


def _interrupt(emulator: ComfyEmulator, body: dict[str, Any] | None) -> None:
    response = (
        httpx.post(emulator.url + "/interrupt", json=body)
        if body is not None
        else httpx.post(emulator.url + "/interrupt")
    )
    assert (response.status_code, response.content) == (200, b"")


@pytest.mark.parametrize(("name", "targeted"), [("40_interrupt_global", False), ("41_interrupt_targeted", True)])
def test_interrupts(transcripts_dir: Path, comfyui_emulator: ComfyEmulator, name: str, targeted: bool) -> None:
    """The interrupt lands on the node the recording shows (held there by the ``hold_at`` fault)."""
    recording = load(transcripts_dir, name)
    _need_nodes(recording)
    comfyui_emulator.set_faults(hold_at="12")
    with WsClient(comfyui_emulator.ws_url, "probe-interrupt") as ws:
        request = dict(recording["post_prompt"]["request_json"], client_id="probe-interrupt")
        prompt_id = _post(comfyui_emulator, request)
        ws.until_type("executing", node="12")
        if targeted:
            _interrupt(comfyui_emulator, {"prompt_id": "not-running"})  # logged and ignored
            _interrupt(comfyui_emulator, {"prompt_id": prompt_id})
        else:
            _interrupt(comfyui_emulator, None)
        ws.until_done(prompt_id)
        frames = ws.frames[1:]
    assert summary(frames) == recording["ws_types"]
    history = httpx.get(f"{comfyui_emulator.url}/history/{prompt_id}").json()
    recorded_id = recording["post_prompt"]["json"]["prompt_id"]
    assert history_entry(history, prompt_id) == history_entry(recording["history"]["json"], recorded_id)


@pytest.mark.parametrize(
    "name",
    ["83_ksampler_interrupt_latent2rgb", "83_ksampler_interrupt_latent2rgb_flags"],
)
def test_ksampler_interrupted_between_steps(
    transcripts_dir: Path, comfyui_emulator_factory: Factory, name: str
) -> None:
    """Interrupted while step 4 of 200 "runs" (the step delay): no 4th progress, then execution_interrupted."""
    recording = load(transcripts_dir, name)
    _need_nodes(recording)
    emulator = comfyui_emulator_factory(step_delay=0.5)
    request = recording["post_prompt"]["request_json"]
    with WsClient(emulator.ws_url, request["client_id"], feature_flags="flags" in name) as ws:
        prompt_id = _post(emulator, request)
        ws.until_type("progress", value=3)
        _interrupt(emulator, None)
        ws.until_done(prompt_id)
        frames = ws.frames[2 if "flags" in name else 1 :]
    assert summary(frames) == recording["ws_types"]
    history = httpx.get(f"{emulator.url}/history/{prompt_id}").json()
    recorded_id = recording["post_prompt"]["json"]["prompt_id"]
    assert history_entry(history, prompt_id) == history_entry(recording["history"]["json"], recorded_id)


def test_ksampler_flags_client_after_an_interrupted_run(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    """80/81 with a flags client: recorded after an interrupted 256x256 run that left 4, 6 and 7 cached."""
    earlier = load(transcripts_dir, "83_ksampler_interrupt_latent2rgb_flags")
    recordings = [
        load(transcripts_dir, n) for n in ("80_ksampler_latent2rgb_flags_first", "81_ksampler_latent2rgb_flags_warm")
    ]
    _need_nodes(earlier)
    comfyui_emulator.set_faults(hold_at="3")
    with WsClient(comfyui_emulator.ws_url, "warmup") as ws:
        prompt_id = _post(comfyui_emulator, dict(earlier["post_prompt"]["request_json"], client_id="warmup"))
        ws.until_type("executing", node="3")
        _interrupt(comfyui_emulator, None)
        ws.until_done(prompt_id)
    comfyui_emulator.clear_faults()
    for recording in recordings:
        _check_run(comfyui_emulator, recording)


def test_reconnect_with_the_same_client_id(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    recording = load(transcripts_dir, "97_reconnect_same_clientId")
    _need_nodes(recording)
    comfyui_emulator.set_faults(hold_at="11")
    client_id = recording["post_prompt"]["request_json"]["client_id"]
    with WsClient(comfyui_emulator.ws_url, client_id) as first:
        prompt_id = httpx.post(comfyui_emulator.url + "/prompt", json=recording["post_prompt"]["request_json"]).json()[
            "prompt_id"
        ]
        first.until_type("executing", node="11")
    with WsClient(comfyui_emulator.ws_url, client_id) as again:
        comfyui_emulator.clear_faults()
        comfyui_emulator.release()
        frames = [again.greeting, *again.until_done(prompt_id)]
    assert summary(frames) == recording["ws_types_after_reconnect"]
    assert frames[1] == {"type": "executing", "data": {"node": "11"}}


def test_ws_without_client_id_gets_a_hex_sid(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    recorded = load(transcripts_dir, "98_ws_without_clientId")["first_message"]
    with WsClient(comfyui_emulator.ws_url) as ws:
        sid = ws.greeting["data"]["sid"]
    assert len(sid) == len(recorded["data"]["sid"]) == 32 and int(sid, 16) >= 0
    assert ws.greeting == {**recorded, "data": {**recorded["data"], "sid": sid}}


def test_feature_flags_negotiation(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    recording = load(transcripts_dir, "51_ws_image_feature_flags_client")
    with WsClient(comfyui_emulator.ws_url, recording["client_id"], feature_flags=True) as ws:
        assert [ws.greeting, ws.flags_reply] == [m["msg"] for m in recording["ws_on_connect"]]
    assert httpx.get(comfyui_emulator.url + "/features").json() == recording["ws_on_connect"][1]["msg"]["data"]


def test_logs_subscription(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    recording = load(transcripts_dir, "96_logs_subscribe")
    client_id = recording["subscribe"]["request_json"]["clientId"]
    probe = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}
    probe["2"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    with WsClient(comfyui_emulator.ws_url, client_id) as ws:
        response = httpx.patch(
            comfyui_emulator.url + "/internal/logs/subscribe", json=recording["subscribe"]["request_json"]
        )
        assert (response.status_code, response.content) == (200, b"")
        prompt_id = httpx.post(comfyui_emulator.url + "/prompt", json={"prompt": probe, "client_id": client_id}).json()[
            "prompt_id"
        ]
        ws.until_done(prompt_id)
        frames = [*ws.frames[1:], ws.recv()]
    assert summary(frames) == recording["ws_types"]
    logs = [f for f in frames if isinstance(f, dict) and f["type"] == "logs"]
    assert next(e["m"] for f in logs for e in f["data"]["entries"]) == "got prompt\n"
    assert [f["data"]["size"] for f in logs] == [{"cols": 80, "rows": 24}, None]


def _png(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_load_image_after_upload(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    recording = load(transcripts_dir, "60_loadimage_uploaded")
    _need_nodes(recording)
    url = comfyui_emulator.url
    first = httpx.post(url + "/upload/image", files={"image": ("probe_upload.png", _png((255, 0, 0)), "image/png")})
    sub = httpx.post(
        url + "/upload/image",
        files={"image": ("sub.png", _png((0, 255, 0)), "image/png")},
        data={"subfolder": "probe_sub", "type": "input"},
    )
    assert [first.json()["name"], sub.json()] == [
        "probe_upload.png",
        {"name": "sub.png", "subfolder": "probe_sub", "type": "input"},
    ]
    _check_run(comfyui_emulator, recording)


def test_png_metadata_chunks(transcripts_dir: Path, comfyui_emulator: ComfyEmulator) -> None:
    recording = load(transcripts_dir, "99_png_metadata")
    _need_nodes(recording)
    prompt_id, _, _ = _run(comfyui_emulator, recording)
    image = httpx.get(f"{comfyui_emulator.url}/history/{prompt_id}").json()[prompt_id]["outputs"]["2"]["images"][0]
    png = httpx.get(comfyui_emulator.url + "/view", params=image)
    with Image.open(io.BytesIO(png.content)) as img:
        chunks = dict(img.text)  # type: ignore[attr-defined]
    assert {k: json.loads(v) for k, v in chunks.items()} == {
        k: json.loads(v) for k, v in recording["png_text_chunks"].items()
    }
