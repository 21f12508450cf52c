"""The lock: generated from the templates, checked in, and covering every node class and model they use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from handlers.cli import main
from handlers.image import COMFYUI_COMMIT, ImageLock, LockError, ModelPin, load_lock
from handlers.image._generate import (
    MODEL_FOLDERS,
    OBJECT_INFO_FILE,
    coverage_problems,
    generate_lock,
    load_pins,
    lock_outputs,
    render_extra_model_paths,
)

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
IMAGE = REPO / "worker_image"


def test_the_checked_in_lock_and_model_paths_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "lock", "--check", "--root", str(WORKFLOWS), "--dir", str(IMAGE)]) == 0
    outputs = lock_outputs(WORKFLOWS, IMAGE / "pins.json")
    assert (IMAGE / "lock.json").read_text() == outputs["lock.json"]
    assert (IMAGE / "extra_model_paths.yaml").read_text() == outputs["extra_model_paths.yaml"]


def test_check_fails_on_a_stale_lock_and_lock_rewrites_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("pins.json", "lock.json", "extra_model_paths.yaml"):
        shutil.copy(IMAGE / name, tmp_path / name)
    (tmp_path / "lock.json").write_text("{}")
    assert main(["image", "lock", "--check", "--root", str(WORKFLOWS), "--dir", str(tmp_path)]) == 1
    assert "stale: lock.json" in capsys.readouterr().err
    assert main(["image", "lock", "--root", str(WORKFLOWS), "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "lock.json").read_text() == (IMAGE / "lock.json").read_text()


def test_the_lock_pins_comfyui_and_every_template_model_and_node() -> None:
    lock = load_lock(IMAGE / "lock.json")
    assert lock.comfyui.commit == COMFYUI_COMMIT == "a125cd84b054a57729b5eecab930ca9408719832"
    assert coverage_problems(WORKFLOWS, lock) == []
    by_id = {m.id: m for m in lock.models}
    sdxl = by_id["checkpoints/sd_xl_base_1.0.safetensors"]
    assert sdxl.sha256 == "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b"
    assert sdxl.size == 6938078334 and sdxl.digest_source
    for model in lock.models:
        assert (model.sha256 is None) == bool(model.unverified), model.id  # never silently unverified
    assert {n.name for n in lock.custom_nodes} == {
        "ComfyUI-F5-TTS",
        "ComfyUI_IPAdapter_plus",
        "PuLID_ComfyUI",
        "comfyui_controlnet_aux",
    }
    assert set(lock.profiles) >= {"sdxl", "flux", "wan22", "audio", "train", "all", "test"}
    assert lock.profile("all").custom_nodes == tuple(sorted(n.name for n in lock.custom_nodes))


def test_the_test_profile_needs_no_network() -> None:
    lock = load_lock(IMAGE / "lock.json")
    assert lock.nodes_of("test") == []
    models = lock.models_of("test")
    assert models and all(m.generator and m.sha256 for m in models)


def _library(tmp_path: Path, graph: dict[str, object], models: list[dict[str, str]]) -> Path:
    root = tmp_path / "lib"
    folder = root / "image" / "t"
    folder.mkdir(parents=True)
    (folder / "workflow.json").write_text(json.dumps(graph))
    (folder / "template.json").write_text(json.dumps({"name": "t", "kind": "image", "models": models}))
    (root / "_catalogue").mkdir()
    shutil.copy(WORKFLOWS / OBJECT_INFO_FILE, root / OBJECT_INFO_FILE)
    shutil.copy(WORKFLOWS / "_catalogue" / "custom_nodes.json", root / "_catalogue" / "custom_nodes.json")
    return root


def _pins(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"profiles": {"all": {"templates": ["*"]}}, **extra}))
    return path


def test_coverage_catches_an_unknown_node_class(tmp_path: Path) -> None:
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "IPAdapterAdvanced", "inputs": {}},  # a custom node class no locked pack provides here
        "3": {"class_type": "NoSuchNode", "inputs": {}},
    }
    root = _library(tmp_path, graph, [])
    lock = generate_lock(root, load_pins(_pins(tmp_path)))
    problems = coverage_problems(root, lock)
    assert any("NoSuchNode" in p for p in problems)
    assert any("IPAdapterAdvanced" in p for p in problems)
    assert not any("EmptyImage" in p for p in problems)
    with pytest.raises(LockError, match="NoSuchNode"):
        lock_outputs(root, _pins(tmp_path))


def test_coverage_catches_a_model_the_lock_lacks(tmp_path: Path) -> None:
    model = {"file": "m.safetensors", "folder": "checkpoints", "url": "https://example.invalid/m.safetensors"}
    root = _library(tmp_path, {"1": {"class_type": "EmptyImage", "inputs": {}}}, [model])
    stale = ImageLock.model_validate({"comfyui": {"commit": COMFYUI_COMMIT}})
    assert coverage_problems(root, stale) == [
        "image/t: model checkpoints/m.safetensors (https://example.invalid/m.safetensors) is not in the lock"
    ]
    generated = generate_lock(root, load_pins(_pins(tmp_path)))
    [pin] = generated.models
    assert pin.sha256 is None and pin.unverified  # no digest known: locked as unverified, said so
    assert coverage_problems(root, generated) == []


def test_one_file_from_two_urls_needs_one_digest(tmp_path: Path) -> None:
    root = _library(
        tmp_path,
        {"1": {"class_type": "EmptyImage", "inputs": {}}},
        [{"file": "ae.safetensors", "folder": "vae", "url": "https://a.invalid/ae.safetensors"}],
    )
    other = root / "image" / "u"
    other.mkdir()
    (other / "workflow.json").write_text(json.dumps({"1": {"class_type": "EmptyImage", "inputs": {}}}))
    (other / "template.json").write_text(
        json.dumps(
            {
                "name": "u",
                "kind": "image",
                "models": [{"file": "ae.safetensors", "folder": "vae", "url": "https://b.invalid/ae.safetensors"}],
            }
        )
    )
    with pytest.raises(LockError, match="two URLs"):
        generate_lock(root, load_pins(_pins(tmp_path)))
    digest = {"sha256": "a" * 64, "size": 3, "source": "test"}
    pins = _pins(
        tmp_path, model_digests={"https://a.invalid/ae.safetensors": digest, "https://b.invalid/ae.safetensors": digest}
    )
    [pin] = generate_lock(root, load_pins(pins)).models
    assert pin.url == "https://a.invalid/ae.safetensors" and pin.mirrors == ("https://b.invalid/ae.safetensors",)


def test_lock_entries_are_validated() -> None:
    with pytest.raises(ValidationError, match="'unverified' must say why"):
        ModelPin(folder="vae", file="x.bin", url="https://example.invalid/x")
    with pytest.raises(ValidationError, match="exactly one of url or generator"):
        ModelPin(folder="vae", file="x.bin", sha256="a" * 64)
    with pytest.raises(ValidationError, match="relative path"):
        ModelPin(folder="../etc", file="x.bin", url="https://example.invalid/x", sha256="a" * 64)
    with pytest.raises(ValidationError, match="names what the lock lacks"):
        ImageLock.model_validate({"comfyui": {"commit": COMFYUI_COMMIT}, "profiles": {"p": {"models": ["vae/x"]}}})


def test_extra_model_paths_cover_every_folder_baked_and_on_the_volume() -> None:
    text = (IMAGE / "extra_model_paths.yaml").read_text()
    assert text == render_extra_model_paths()
    sections = text.split("\nrunpod_volume:\n")
    assert "base_path: /opt/comfyui/models" in sections[0] and "base_path: /runpod-volume/models" in sections[1]
    lock = load_lock(IMAGE / "lock.json")
    needed = {m.folder.split("/")[0] for m in lock.models} | {
        "checkpoints",
        "loras",
        "vae",
        "clip",
        "text_encoders",
        "diffusion_models",
        "unet",
        "clip_vision",
        "upscale_models",
        "controlnet",
        "ipadapter",
        "insightface",
        "pulid",
        "audio_encoders",
        "model_patches",
    }
    for folder in needed:
        assert folder in MODEL_FOLDERS
        for section in sections:
            assert f"\n    {folder}:" in section, (folder, section[:40])


def test_extra_model_paths_parse_as_comfyui_reads_them() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((IMAGE / "extra_model_paths.yaml").read_text())
    volume = config["runpod_volume"]
    assert volume["base_path"] == "/runpod-volume/models"
    assert volume["diffusion_models"].split() == ["diffusion_models", "unet"]
    assert config["comfy_relay_baked"]["is_default"] is True
