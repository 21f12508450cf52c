"""Every implemented node's catalogue entry has the real ``/object_info`` entry's exact shape: core nodes as the
recorded ComfyUI 0.3.64 serves them, custom nodes as recorded from their packs' pinned commits in
``workflows/_catalogue/custom_nodes.json``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from handlers.local.comfyui._node import Folders
from handlers.local.comfyui._nodes import NODE_CLASSES, node_info, object_info
from handlers.workflow import custom_node_classes
from tests.conftest import REPO

CUSTOM_NODES = custom_node_classes(REPO / "workflows")


@pytest.fixture(scope="module")
def real_catalogue(object_info_path: Path) -> dict[str, Any]:
    catalogue: dict[str, Any] = json.loads(object_info_path.read_text())
    return {**CUSTOM_NODES, **catalogue}


def test_every_class_is_recorded_once(real_catalogue: dict[str, Any], object_info_path: Path) -> None:
    core = json.loads(object_info_path.read_text())
    for class_type in NODE_CLASSES:
        assert (class_type in core) != (class_type in CUSTOM_NODES), class_type
        custom = NODE_CLASSES[class_type].PYTHON_MODULE.startswith("custom_nodes.")
        # Custom packs' nodes say which pack they come from; websocket_image_save ships with ComfyUI itself.
        assert custom == (class_type in CUSTOM_NODES or class_type == "SaveImageWebsocket"), class_type


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    """Folders like the recorded server's: one ``example.png`` input and no model files."""
    f = Folders(tmp_path / "input", tmp_path / "output", tmp_path / "temp", tmp_path / "models")
    for d in (f.input, f.output, f.temp, f.models):
        d.mkdir()
    (f.input / "example.png").write_bytes(b"")
    return f


@pytest.mark.parametrize("class_type", sorted(NODE_CLASSES))
def test_entry_matches_real_server(class_type: str, real_catalogue: dict[str, Any], folders: Folders) -> None:
    ours = NODE_CLASSES[class_type].catalogue_entry(folders)
    real = real_catalogue[class_type]
    assert ours == real
    # Key order matters to anyone diffing JSON bodies: top-level and per-input.
    assert list(ours) == list(real)
    for section, spec in real["input"].items():
        assert list(ours["input"][section]) == list(spec)
        for name, value in spec.items():
            if len(value) > 1 and isinstance(value[1], dict):
                assert list(ours["input"][section][name][1]) == list(value[1]), f"{class_type}.{name} option order"


def test_object_info_lists_every_class_under_its_name(folders: Folders) -> None:
    body = object_info(folders)
    assert list(body) == list(NODE_CLASSES)
    assert all(entry["name"] == name for name, entry in body.items())
    json.dumps(body)  # the body must be plain JSON


def test_node_info_for_one_class_and_for_an_unknown_one(folders: Folders) -> None:
    assert node_info("EmptyImage", folders) == {"EmptyImage": object_info(folders)["EmptyImage"]}
    assert node_info("NoSuchNode", folders) == {}


def test_first_delivery_is_registered() -> None:
    assert {"EmptyImage", "ImageInvert", "ImageBlur", "SaveImage", "PreviewImage"} <= set(NODE_CLASSES)


def test_model_combos_list_the_models_folder(folders: Folders) -> None:
    for folder, name in (
        ("checkpoints", "sd15.safetensors"),
        ("diffusion_models", "flux.safetensors"),
        ("unet", "legacy.gguf.safetensors"),
        ("text_encoders", "t5.safetensors"),
        ("clip", "clip_l.safetensors"),
        ("vae", "ae.sft"),
        ("loras", "style/ink.safetensors"),
        ("upscale_models", "4x-UltraSharp.pth"),
    ):
        path = folders.models / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    (folders.models / "checkpoints" / "put_checkpoints_here").write_bytes(b"")  # not a model file
    body = object_info(folders)

    def combo(class_type: str, name: str) -> list[str]:  # V1 combos: the list comes first
        spec = body[class_type]["input"]["required"][name]
        assert isinstance(spec[0], list)
        return list(spec[0])

    assert combo("CheckpointLoaderSimple", "ckpt_name") == ["sd15.safetensors"]
    assert combo("UNETLoader", "unet_name") == ["flux.safetensors", "legacy.gguf.safetensors"]
    assert combo("CLIPLoader", "clip_name") == ["clip_l.safetensors", "t5.safetensors"]
    assert combo("DualCLIPLoader", "clip_name2") == ["clip_l.safetensors", "t5.safetensors"]
    assert combo("VAELoader", "vae_name") == ["ae.sft", "pixel_space"]
    assert combo("LoraLoader", "lora_name") == ["style/ink.safetensors"]
    assert combo("LoraLoaderModelOnly", "lora_name") == ["style/ink.safetensors"]
    upscale = body["UpscaleModelLoader"]["input"]["required"]["model_name"]
    assert upscale == ["COMBO", {"multiselect": False, "options": ["4x-UltraSharp.pth"]}]


def test_image_combos_list_the_input_folder(folders: Folders) -> None:
    (folders.input / "b.webp").write_bytes(b"")
    (folders.input / "notes.txt").write_bytes(b"")
    (folders.input / "sub").mkdir()
    (folders.input / "sub" / "c.png").write_bytes(b"")
    body = object_info(folders)
    assert body["LoadImage"]["input"]["required"]["image"][0] == ["b.webp", "example.png"]
    assert body["LoadImageMask"]["input"]["required"]["image"][0] == ["b.webp", "example.png"]


def test_entries_are_fresh_copies(folders: Folders) -> None:
    first = object_info(folders)
    first["EmptyImage"]["input"]["required"]["width"][1]["max"] = 1
    assert object_info(folders)["EmptyImage"]["input"]["required"]["width"][1]["max"] == 16384


@pytest.mark.parametrize("class_type", sorted(NODE_CLASSES))
def test_execute_tolerates_inputs_it_does_not_name(class_type: str) -> None:
    """Hidden inputs (prompt, extra_pnginfo, unique_id) and unknown extras must not break a call."""
    parameters = inspect.signature(NODE_CLASSES[class_type].execute).parameters.values()
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def test_public_surface() -> None:
    import handlers.local.comfyui._nodes as nodes

    assert nodes.__all__ == ["NODE_CLASSES", "ProgressCall", "RecordingContext", "node_info", "object_info"]


def test_custom_and_training_combos_list_their_folders(folders: Folders) -> None:
    for name in (
        "ipadapter/ip-adapter-faceid-plusv2_sdxl.bin",
        "pulid/ip-adapter_pulid_sdxl_fp16.safetensors",
        "loras/ava_sdxl_v1.safetensors",
        "checkpoints/F5-TTS/F5TTS_v1_Base.safetensors",
        "checkpoints/F5-TTS/F5TTS_v1_Base.txt",
        "checkpoints/F5-TTS/no_vocab.safetensors",  # no .txt beside it: not offered
    ):
        path = folders.models / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    for name in ("voice.wav", "clip.mp4", "notes.txt", "dataset/a.png", "dataset/5_ava/b.png"):
        path = folders.input / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    body = object_info(folders)

    def options(class_type: str, name: str) -> list[str]:
        return list(body[class_type]["input"]["required"][name][0])

    assert options("IPAdapterModelLoader", "ipadapter_file") == ["ip-adapter-faceid-plusv2_sdxl.bin"]
    assert options("PulidModelLoader", "pulid_file") == ["ip-adapter_pulid_sdxl_fp16.safetensors"]
    assert options("F5TTSAudioInputs", "model")[-2:] == ["E2", "model://F5TTS_v1_Base.safetensors"]
    assert options("TrainLoraNode", "existing_lora") == ["ava_sdxl_v1.safetensors", "[None]"]
    assert options("LoadAudio", "audio") == ["clip.mp4", "voice.wav"]
    assert options("LoadImageTextSetFromFolderNode", "folder") == ["dataset", "dataset/5_ava"]
