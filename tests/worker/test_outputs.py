"""Output collection, pure: ui dicts of every kind into typed references, safe paths, chunked metadata."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import wave
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from handlers.contract import OutputKind
from handlers.worker._outputs import (
    ComfyDirs,
    FileRef,
    InlineBudget,
    OutputPathError,
    collect_node_outputs,
    describe_file,
    resolve_ref,
)


def ref(filename: str, subfolder: str = "probe", type_: str = "output") -> dict[str, str]:
    return {"filename": filename, "subfolder": subfolder, "type": type_}


def test_recorded_output_kinds(transcripts_dir: Path) -> None:
    """Transcript 03 from a real ComfyUI 0.3.64: every core output kind."""
    recording = json.loads((transcripts_dir / "03_output_kinds.json").read_text())
    ((_prompt_id, entry),) = recording["history"]["json"].items()
    prompt = entry["prompt"][2]
    titles = {node_id: node["class_type"] for node_id, node in prompt.items()}
    collected = {n: collect_node_outputs(ui, n, titles.get(n)) for n, ui in entry["outputs"].items()}
    kinds = {node_id: [(f.kind, f.filename) for f in out.files] for node_id, out in collected.items()}
    assert kinds == {
        "2": [(OutputKind.ANIMATED, "anim_00001_.webp")],
        "3": [(OutputKind.ANIMATED, "anim_00002_.png")],
        "5": [(OutputKind.AUDIO, "audio_00001_.flac")],
        "7": [(OutputKind.VIDEO, "video_00001_.mp4")],
        "9": [],
        "11": [],
        "12": [(OutputKind.IMAGE, f"batch_0000{i}_.png") for i in (1, 2, 3)],
        "13": [],  # PreviewAudio is temp: dropped by default
        "15": [(OutputKind.LATENT, "latent_00001_.latent")],
    }
    assert [t.text for t in collected["9"].texts] == ["hello, world"]
    assert [t.text for t in collected["11"].texts] == ["42"]
    assert collected["12"].files[0].node_title == "SaveImage"
    with_temp = {n: collect_node_outputs(ui, n, include_temp=True) for n, ui in entry["outputs"].items()}
    (preview,) = with_temp["13"].files
    assert (preview.kind, preview.temp, preview.subfolder) == (OutputKind.AUDIO, True, "")
    # The same ui dicts arrive in ``executed`` messages: collecting either gives the same answer.
    executed = [m["msg"]["data"] for m in recording["ws"] if m.get("msg", {}).get("type") == "executed"]
    assert executed
    for data in executed:
        assert collect_node_outputs(data["output"], data["node"], titles.get(data["node"])) == collected[data["node"]]


def test_kinds_from_every_known_key() -> None:
    ui: dict[str, Any] = {
        "images": [ref("a.png"), ref("b.webp")],
        "audio": [ref("v.flac")],
        "latents": [ref("l.latent")],
        "3d": [ref("mesh_00001_.glb", "3d")],
        "gifs": [
            {**ref("vhs_00001.mp4", ""), "format": "video/h264-mp4", "frame_rate": 8.0, "fullpath": "/x"},
            {**ref("vhs_00002.gif", ""), "format": "image/gif"},
            {**ref("vhs_00003.webp", ""), "format": "image/webp"},
        ],
        "text": ["t1", 7],
        "custom_masks": [ref("mask.exr"), "not a file", {"no": "filename"}],
        "result": ["model.glb", {"camera": 1}],  # V3 Preview3D: not file dicts
        "bg_color": "#fff",
    }
    out = collect_node_outputs(ui, "9", "Save")
    assert [(f.key, f.kind, f.filename) for f in out.files] == [
        ("images", OutputKind.IMAGE, "a.png"),
        ("images", OutputKind.IMAGE, "b.webp"),
        ("audio", OutputKind.AUDIO, "v.flac"),
        ("latents", OutputKind.LATENT, "l.latent"),
        ("3d", OutputKind.MODEL_3D, "mesh_00001_.glb"),
        ("gifs", OutputKind.VIDEO, "vhs_00001.mp4"),
        ("gifs", OutputKind.ANIMATED, "vhs_00002.gif"),
        ("gifs", OutputKind.ANIMATED, "vhs_00003.webp"),
        ("custom_masks", OutputKind.FILE, "mask.exr"),
    ]
    assert [t.text for t in out.texts] == ["t1", "7"]


def test_animated_flags_per_item_or_for_all() -> None:
    per_item = collect_node_outputs({"images": [ref("a.webp"), ref("b.png")], "animated": [True, False]}, "1")
    assert [f.kind for f in per_item.files] == [OutputKind.ANIMATED, OutputKind.IMAGE]
    one_flag = collect_node_outputs({"images": [ref("a.webp"), ref("b.webp")], "animated": [True]}, "1")
    assert [f.kind for f in one_flag.files] == [OutputKind.ANIMATED, OutputKind.ANIMATED]
    video = collect_node_outputs({"images": [ref("v.mp4")], "animated": [True]}, "1")
    assert video.files[0].kind is OutputKind.VIDEO


def test_temp_outputs_only_on_request_and_duplicates_once() -> None:
    ui = {"images": [ref("p.png", "", "temp"), ref("s.png"), ref("s.png")]}
    assert [f.filename for f in collect_node_outputs(ui, "1").files] == ["s.png"]
    assert [f.filename for f in collect_node_outputs(ui, "1", include_temp=True).files] == ["p.png", "s.png"]


def test_resolve_ref_stays_inside_comfy_folders(tmp_path: Path) -> None:
    dirs = ComfyDirs(output=tmp_path / "out", temp=tmp_path / "tmp", input=tmp_path / "in")
    good = FileRef("1", None, OutputKind.IMAGE, "a.png", "probe/x", "output", "images")
    assert resolve_ref(good, dirs) == (tmp_path / "out" / "probe" / "x" / "a.png").resolve()
    temp = FileRef("1", None, OutputKind.IMAGE, "a.png", "", "temp", "images")
    assert resolve_ref(temp, dirs) == (tmp_path / "tmp" / "a.png").resolve()
    for filename, subfolder, type_ in [
        ("../../etc/passwd", "", "output"),
        ("a.png", "../..", "output"),
        ("a.png", "/etc", "output"),
        ("a.png", "x/../../y", "output"),
        ("..", "", "output"),
        ("a.png", "", "models"),
    ]:
        with pytest.raises(OutputPathError):
            resolve_ref(FileRef("1", None, OutputKind.FILE, filename, subfolder, type_, "k"), dirs)
    # A symlinked subfolder pointing elsewhere is caught on the resolved path.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    with pytest.raises(OutputPathError, match="outside"):
        resolve_ref(FileRef("1", None, OutputKind.FILE, "secret", "link", "output", "k"), dirs)


def _save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_describe_png_and_animated_images(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buf, format="PNG")
    png = _save(tmp_path, "a.png", buf.getvalue())
    meta = describe_file(png)
    assert (meta.mime, meta.width, meta.height, meta.frames) == ("image/png", 40, 30, 1)
    assert (meta.bytes, meta.sha256) == (len(buf.getvalue()), hashlib.sha256(buf.getvalue()).hexdigest())
    frames = [Image.new("RGB", (16, 12), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    webp = describe_file(_save(tmp_path, "anim.webp", buf.getvalue()))
    assert (webp.mime, webp.width, webp.height, webp.frames) == ("image/webp", 16, 12, 3)
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:], duration=100)
    apng = describe_file(_save(tmp_path, "anim.png", buf.getvalue()))
    assert (apng.width, apng.frames) == (16, 3)


def test_describe_wav_and_flac_durations(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00" * 4 * 4000)
    meta = describe_file(_save(tmp_path, "a.wav", buf.getvalue()))
    assert (meta.mime, meta.duration_s) == ("audio/wav", 0.5)
    # FLAC: STREAMINFO with 44100 Hz and 22050 samples; the frames after it are not needed for the duration.
    info = bytearray(34)
    packed = (44100 << 44) | (1 << 41) | (15 << 36) | 22050
    info[10:18] = packed.to_bytes(8, "big")
    flac = b"fLaC" + bytes([0x80, 0, 0, 34]) + bytes(info) + b"\xff\xf8" + b"\x00" * 10
    meta = describe_file(_save(tmp_path, "a.flac", flac))
    assert (meta.mime, meta.duration_s) == ("audio/flac", 0.5)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_describe_mp4_reads_moov_even_at_the_end(tmp_path: Path) -> None:
    mvhd = _box(b"mvhd", b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, 1000, 2500) + b"\x00" * 80)
    tkhd = _box(b"tkhd", b"\x00\x00\x00\x07" + b"\x00" * 72 + struct.pack(">II", 320 << 16, 240 << 16))
    moov = _box(b"moov", mvhd + _box(b"trak", tkhd))
    data = _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2") + _box(b"mdat", b"\x00" * 5000) + moov
    meta = describe_file(_save(tmp_path, "v.mp4", data))
    assert (meta.mime, meta.duration_s, meta.width, meta.height) == ("video/mp4", 2.5, 320, 240)
    # A truncated file is described without dimensions instead of failing.
    cut = describe_file(_save(tmp_path, "cut.mp4", data[:-30]))
    assert (cut.mime, cut.bytes) == ("video/mp4", len(data) - 30)


def test_describe_unknown_files_fall_back_to_extension(tmp_path: Path) -> None:
    assert describe_file(_save(tmp_path, "m.glb", b"glTF\x02\x00\x00\x00")).mime == "model/gltf-binary"
    assert describe_file(_save(tmp_path, "x.latent", b"\x00" * 10)).mime == "application/octet-stream"
    assert describe_file(_save(tmp_path, "x.bin", b"\x01"), mime_hint="application/x-thing").mime == (
        "application/x-thing"
    )
    broken = describe_file(_save(tmp_path, "broken.png", b"\x89PNG\r\n\x1a\n garbage"))
    assert (broken.mime, broken.width) == ("image/png", None)


def test_describe_reads_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(tmp_path, "big.bin", b"\x01" * (3 * 1024 * 1024 + 5))
    sizes: list[int] = []
    real_open = Path.open

    def spy_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        fh = real_open(self, *args, **kwargs)
        real_read = fh.read

        def read(n: int = -1) -> Any:
            sizes.append(n)
            return real_read(n)

        fh.read = read
        return fh

    monkeypatch.setattr(Path, "open", spy_open)
    meta = describe_file(path)
    assert meta.bytes == 3 * 1024 * 1024 + 5
    assert sizes and all(0 < n <= 1024 * 1024 for n in sizes)


def test_inline_budget_never_passes_the_runpod_limit() -> None:
    budget = InlineBudget(per_item=4_000_000)
    assert budget.take(3_000_000)
    assert budget.take(3_000_000)
    assert not budget.take(3_000_000)  # 9 MB raw would be 12 MB of base64
    assert budget.take(1_000_000)
    assert not InlineBudget(per_item=0).take(1)
    assert InlineBudget(per_item=10**9).per_item == 7_000_000
    assert not InlineBudget(per_item=100).take(101)
