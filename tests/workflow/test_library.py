"""The workflow library (workflows/): every template loads, binds its defaults and validates against ComfyUI 0.3.64's
real /object_info, merged with the custom node schemas recorded in workflows/_catalogue/custom_nodes.json.

The only errors allowed are the ones a catalogue without model files must give: ``value_not_in_list`` on a loader's
file input naming a model the template's manifest (or the character's LoRA) lists, and on the training dataset
folder (staged per job).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from handlers.workflow import (
    Catalogue,
    ModelFamily,
    ParamType,
    Template,
    ValidationIssue,
    bind_template,
    custom_node_classes,
    default_workflows_dir,
    detect_family,
    list_characters,
    list_templates,
    load_template,
    validate,
    with_custom_nodes,
)
from handlers.workflow._library import CUSTOM_NODES_FILE
from tests.conftest import REPO

LIBRARY = REPO / "workflows"
TEMPLATES = list_templates(LIBRARY)
#: Early examples that predate the library conventions (titles on every node, models listed).
_EXAMPLES = {"image/blur", "image/solid-color"}
_EXAMPLE_VALUES: dict[str, Any] = {"width": 64, "height": 64, "color": 0}
#: Combo inputs whose options come from a folder on the GPU machine: absent from any catalogue snapshot.
_STAGED_FOLDERS = {("LoadImageTextSetFromFolderNode", "folder"), ("LoadImageSetFromFolderNode", "folder")}


@pytest.fixture(scope="module")
def object_info(object_info_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(object_info_path.read_text())
    return data


@pytest.fixture(scope="module")
def catalogue(object_info: dict[str, Any]) -> Catalogue:
    return Catalogue(with_custom_nodes(object_info, LIBRARY))


def _bound_defaults(template: Template) -> dict[str, Any]:
    """The graph with every default bound, required values filled in and media staged under dummy names."""
    params: dict[str, Any] = {}
    for name, spec in template.params().items():
        if spec.required:
            is_media = spec.param is not None and spec.param.is_media
            params[name] = f"{name}.bin" if is_media else _EXAMPLE_VALUES.get(name, f"sample {name}")
    bound = bind_template(template, params, rng=random.Random(7))
    staged = {m.value: f"job-1/{m.value}" for m in bound.media if m.from_job}
    return bound.with_staged(staged)


def _expected(issue: ValidationIssue, template: Template, graph: dict[str, Any]) -> bool:
    if issue.type != "value_not_in_list" or issue.node_id is None or issue.input is None:
        return False
    if (issue.class_type, issue.input) in _STAGED_FOLDERS:
        return True
    value = graph[issue.node_id]["inputs"][issue.input]
    files = {m.file for m in template.manifest.models} if template.manifest else set()
    if template.profile is not None and template.profile.lora is not None:
        files.add(template.profile.lora.file)  # a character's own LoRA (private weights: no public URL)
    return isinstance(value, str) and value.removeprefix("model://") in files


@pytest.mark.parametrize(("character", "name"), TEMPLATES)
def test_template_validates_with_its_defaults(character: str | None, name: str, catalogue: Catalogue) -> None:
    template = load_template(LIBRARY, name, character=character)
    graph = _bound_defaults(template)
    report = validate(graph, catalogue)
    unexpected = [str(i) for i in report.issues if not _expected(i, template, graph)]
    assert unexpected == []
    assert report.output_nodes, "ComfyUI refuses a prompt without output nodes"


def test_the_model_file_exception_is_narrow(catalogue: Catalogue) -> None:
    template = load_template(LIBRARY, "image/flux-dev")
    graph = _bound_defaults(template)
    graph["1"]["inputs"]["unet_name"] = "not-in-the-manifest.safetensors"
    graph["2"]["inputs"]["type"] = "sdxl_typo"
    issues = [i for i in validate(graph, catalogue).issues if not _expected(i, template, graph)]
    assert {(i.node_id, i.input) for i in issues} == {("1", "unet_name"), ("2", "type")}


@pytest.mark.parametrize(("character", "name"), [t for t in TEMPLATES if t[1] not in _EXAMPLES])
def test_template_documents_what_it_needs(character: str | None, name: str, object_info: dict[str, Any]) -> None:
    template = load_template(LIBRARY, name, character=character)
    assert template.manifest is not None and template.manifest.description
    titles = [node.get("_meta", {}).get("title") for node in template.graph.values()]
    assert all(titles) and len(set(titles)) == len(titles), "every node has its own title"
    assert template.manifest.models, "every library template names its model files"
    for model in template.manifest.models:
        assert model.url.startswith("https://"), model
    custom = {node["class_type"] for node in template.graph.values()} - set(object_info)
    packs = json.loads((LIBRARY / CUSTOM_NODES_FILE).read_text())["packs"]
    needed = {(p["repo"], p["commit"]) for p in packs if custom & set(p["nodes"])}
    declared = {(c.repo, c.commit) for c in template.manifest.custom_nodes}
    assert custom <= set(custom_node_classes(LIBRARY)), "every custom node has a recorded schema"
    assert declared == needed, "custom_nodes lists exactly the packs the graph uses, at the recorded commits"


def test_recorded_custom_nodes_are_well_formed(object_info: dict[str, Any]) -> None:
    document = json.loads((LIBRARY / CUSTOM_NODES_FILE).read_text())
    classes = custom_node_classes(LIBRARY)
    assert not set(classes) & set(object_info), "core classes are never re-recorded"
    for pack in document["packs"]:
        assert pack["repo"].startswith("https://github.com/")
        assert len(pack["commit"]) == 40 and int(pack["commit"], 16) >= 0
    catalogue = Catalogue(classes)
    faceid = catalogue["IPAdapterFaceID"]
    assert faceid.output_types == ("MODEL", "IMAGE")
    assert [s.name for s in faceid.inputs_in("optional")] == [
        "image_negative",
        "attn_mask",
        "clip_vision",
        "insightface",
    ]
    assert catalogue["ApplyPulid"].input("method").options == ("fidelity", "style", "neutral")  # type: ignore[union-attr]
    assert catalogue["F5TTSAudioInputs"].output_types == ("AUDIO",)
    assert catalogue["PulidEvaClipLoader"].inputs == ()


def test_the_library_covers_the_issue() -> None:
    names = {name for _, name in TEMPLATES}
    assert {
        "image/sdxl-basic",
        "image/flux-dev",
        "image/z-image-turbo",
        "image/qwen-image",
        "image/sdxl-inpaint",
        "image/sdxl-outpaint",
        "image/sdxl-faceid",
        "image/sdxl-pulid",
        "image/character-sheet",
        "image/controlnet-pose",
        "image/controlnet-pose-photo",
        "image/flux-identity",
        "video/wan22-i2v",
        "audio/f5-tts",
        "train/lora-sdxl",
    } <= names
    assert list_characters(LIBRARY) == ["ava", "mira"]


@pytest.mark.parametrize(
    ("name", "family", "classes"),
    [
        ("image/flux-dev", ModelFamily.FLUX, {"UNETLoader", "DualCLIPLoader", "FluxGuidance", "SamplerCustomAdvanced"}),
        ("image/z-image-turbo", ModelFamily.Z_IMAGE, {"CLIPLoader", "ModelSamplingAuraFlow", "ConditioningZeroOut"}),
        ("image/qwen-image", ModelFamily.QWEN_IMAGE, {"CLIPLoader", "ModelSamplingAuraFlow", "EmptySD3LatentImage"}),
        ("video/wan22-i2v", ModelFamily.WAN, {"WanImageToVideo", "KSamplerAdvanced", "CreateVideo", "SaveVideo"}),
        ("image/sdxl-inpaint", ModelFamily.SDXL, {"InpaintModelConditioning", "LoadImageMask"}),
        ("image/sdxl-outpaint", ModelFamily.SDXL, {"ImagePadForOutpaint", "VAEEncodeForInpaint"}),
        ("image/sdxl-faceid", ModelFamily.SDXL, {"IPAdapterUnifiedLoaderFaceID", "IPAdapterFaceID"}),
        ("image/sdxl-pulid", ModelFamily.SDXL, {"PulidModelLoader", "ApplyPulid"}),
        ("image/controlnet-pose", ModelFamily.SDXL, {"ControlNetLoader", "ControlNetApplyAdvanced", "LoadImage"}),
        ("image/controlnet-pose-photo", ModelFamily.SDXL, {"DWPreprocessor", "ControlNetApplyAdvanced"}),
        ("image/flux-identity", ModelFamily.FLUX, {"CLIPVisionEncode", "StyleModelApply", "FluxGuidance"}),
        ("train/lora-sdxl", ModelFamily.SDXL, {"TrainLoraNode", "SaveLoRANode", "LoadImageTextSetFromFolderNode"}),
    ],
)
def test_each_family_is_built_the_way_comfyui_runs_it(name: str, family: ModelFamily, classes: set[str]) -> None:
    graph = load_template(LIBRARY, name).graph
    assert detect_family(graph) is family
    assert classes <= {node["class_type"] for node in graph.values()}


def test_wan_experts_split_the_steps() -> None:
    template = load_template(LIBRARY, "video/wan22-i2v")
    graph = bind_template(template, {"image": "a.png", "prompt": "p", "steps": 8, "split_step": 3}).graph
    high, low = graph["11"]["inputs"], graph["12"]["inputs"]
    assert (high["add_noise"], high["return_with_leftover_noise"]) == ("enable", "enable")
    assert (high["end_at_step"], low["start_at_step"], high["steps"], low["steps"]) == (3, 3, 8, 8)
    assert low["latent_image"] == ["11", 0]


def test_character_sheet_poses_share_one_seed_and_the_references() -> None:
    template = load_template(LIBRARY, "image/character-sheet", character="mira")
    bound = bind_template(template, {"seed": 42}, media_names=["mira_ref_front.png"])
    samplers = [n for n in bound.graph.values() if n["class_type"] == "KSampler"]
    assert len(samplers) == 4 and {s["inputs"]["seed"] for s in samplers} == {42}
    media = {m.param: (m.value, m.from_job) for m in bound.media}
    assert media == {
        "reference_image": ("mira_ref_front.png", True),
        "reference_image_2": ("mira_ref_side.png", False),
    }
    assert "yellow raincoat" in bound.graph["25"]["inputs"]["string_b"]


def test_tts_for_a_character_uses_her_voice() -> None:
    template = load_template(LIBRARY, "audio/f5-tts", character="mira")
    assert template.params_schema()["required"] == ["text"]
    bound = bind_template(template, {"text": "Good morning."}, media_names=["mira_voice.wav"])
    speak = bound.graph["2"]["inputs"]
    assert speak["speech"] == "Good morning." and speak["sample_text"].startswith("Hi, I'm Mira.")
    [voice] = bound.media
    assert (voice.type, voice.value, voice.targets) == (ParamType.AUDIO, "mira_voice.wav", (("1", "audio"),))


def test_training_saves_a_lora_and_samples_it() -> None:
    template = load_template(LIBRARY, "train/lora-sdxl", character="mira")
    graph = bind_template(template, {"dataset": "job-1/dataset"}, rng=random.Random(1)).graph
    assert graph["2"]["inputs"]["folder"] == "job-1/dataset"
    assert graph["5"]["inputs"]["lora"] == ["4", 1] and graph["5"]["inputs"]["prefix"].startswith("loras/")
    assert graph["8"]["inputs"]["string_a"] == "mira_character"
    assert graph["4"]["inputs"]["seed"] == graph["12"]["inputs"]["seed"]


def test_default_root_is_the_repository_library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RELAY_WORKFLOWS_DIR", raising=False)
    assert default_workflows_dir() == LIBRARY
    assert default_workflows_dir({"RELAY_WORKFLOWS_DIR": str(tmp_path)}) == tmp_path
