"""Edits requested through a job's params: split from the template's parameters, applied after binding, every
problem reported as ``invalid_input`` with a path."""

from __future__ import annotations

import random

import pytest
from pydantic import JsonValue

from handlers.contract import ErrorCode
from handlers.workflow import (
    EDIT_PARAMS,
    BindingError,
    GraphEdits,
    ParamType,
    apply_edits,
    bind,
    bind_template,
    load_template,
    prepare_speech_params,
    split_edit_params,
)
from handlers.workflow._manifest import TemplateManifest
from tests.conftest import REPO

LIBRARY = REPO / "workflows"


def test_edit_names_are_split_from_template_params() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    edits, rest = split_edit_params(
        {"prompt": "a cat", "loras": [{"name": "x.safetensors"}], "aspect_ratio": "3:2", "count": 2},
        template.params(),
    )
    assert rest == {"prompt": "a cat"}
    assert edits.loras[0].name == "x.safetensors" and edits.loras[0].strength == 1.0
    assert (edits.aspect_ratio, edits.count) == ("3:2", 2)
    assert split_edit_params({"prompt": "x"})[0].empty
    assert {"loras", "aspect_ratio", "megapixels", "references", "identity", "seeds", "count"} <= EDIT_PARAMS


def test_a_template_parameter_of_the_same_name_wins() -> None:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"batch_size": 1}}}
    manifest = TemplateManifest.model_validate(
        {
            "name": "t",
            "kind": "image",
            "params": [{"name": "count", "type": "int", "binds": [{"node": "1", "input": "batch_size"}]}],
        }
    )
    edits, rest = split_edit_params({"count": 3}, ["count"])
    assert edits.empty and rest == {"count": 3}
    assert bind(graph, rest, manifest=manifest).graph["1"]["inputs"]["batch_size"] == 3


def test_bad_edit_values_are_invalid_input_with_paths() -> None:
    with pytest.raises(BindingError) as info:
        split_edit_params({"loras": [{"name": "a", "strength": 500}, {"strenght": 1}], "count": 0, "identity": "x"})
    paths = sorted(p.path for p in info.value.problems)
    assert paths == [
        "input.params.count",
        "input.params.identity",
        "input.params.loras[0].strength",
        "input.params.loras[1].name",
        "input.params.loras[1].strenght",
    ]
    assert info.value.to_job_error().code is ErrorCode.INVALID_INPUT
    with pytest.raises(BindingError, match="must equal the number of seeds"):
        split_edit_params({"seeds": [1, 2], "count": 3})


def test_apply_edits_end_to_end() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    params: dict[str, JsonValue] = {
        "prompt": "a cat",
        "seed": 100,
        "loras": [{"name": "detail.safetensors", "strength": 0.6}],
        "aspect_ratio": "16:9",
        "references": ["face"],
        "identity": "pulid",
        "count": 3,
    }
    edits, rest = split_edit_params(params, template.params())
    bound = bind_template(template, rest, media_names=["face"])
    variants = apply_edits(bound, edits, media_names=["face"])
    assert [[(s.node_id, s.value, s.param) for s in v.seeds] for v in variants] == [
        [("3", 100, "seed")],
        [("3", 101, "seed")],
        [("3", 102, "seed")],
    ]
    graph = variants[0].graph
    assert (graph["5"]["inputs"]["width"], graph["5"]["inputs"]["height"]) == (1344, 768)
    classes = [n["class_type"] for n in graph.values()]
    assert classes.count("LoraLoader") == 1 and classes.count("ApplyPulid") == 1
    reference = variants[0].media[-1]
    assert (reference.param, reference.type, reference.value, reference.from_job) == (
        "references",
        ParamType.IMAGE,
        "face",
        True,
    )
    staged = variants[1].with_staged({"face": "job-9/face.png"})
    [load] = reference.targets
    assert staged[load[0]]["inputs"]["image"] == "job-9/face.png"
    assert bound.graph["5"]["inputs"]["width"] == 1024, "the bound workflow is left as it was"


def test_no_edits_returns_the_workflow_as_bound() -> None:
    template = load_template(LIBRARY, "image/z-image-turbo")
    bound = bind_template(template, {"prompt": "x"}, rng=random.Random(3))
    assert apply_edits(bound, GraphEdits()) == [bound]


def test_explicit_seeds_and_megapixels() -> None:
    template = load_template(LIBRARY, "image/qwen-image")
    edits, rest = split_edit_params({"prompt": "x", "seeds": [7, 8], "megapixels": 1.0}, template.params())
    variants = apply_edits(bind_template(template, rest), edits)
    assert [v.graph["8"]["inputs"]["seed"] for v in variants] == [7, 8]
    assert all(not s.random for v in variants for s in v.seeds)
    assert (variants[0].graph["7"]["inputs"]["width"], variants[0].graph["7"]["inputs"]["height"]) == (1024, 1024)


def test_identity_defaults_to_the_characters_references() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic", character="mira")
    edits, rest = split_edit_params({"prompt": "x", "identity": "faceid"}, template.params())
    [variant] = apply_edits(
        bind_template(template, rest), edits, profile=template.profile, media_names=["mira_ref_side.png"]
    )
    media = [(m.value, m.from_job) for m in variant.media if m.param == "references"]
    assert media == [("mira_ref_front.png", False), ("mira_ref_side.png", True)]
    assert any(n["class_type"] == "IPAdapterFaceID" for n in variant.graph.values())


@pytest.mark.parametrize(
    ("name", "params", "path", "message"),
    [
        ("image/flux-dev", {"references": ["face"]}, "input.params.references", "SD1.5/SDXL"),
        ("image/sdxl-basic", {"references": ["nope"]}, "input.params.references", "name no media item: nope"),
        ("image/sdxl-basic", {"identity": "faceid"}, "input.params.identity", "needs references"),
        ("image/sdxl-basic", {"loras": [{"name": "a", "source": "Nope"}]}, "input.params.loras[0].source", "no node"),
        ("image/blur", {"aspect_ratio": "1:1"}, "input.params.aspect_ratio", "no latent node"),
        ("image/sdxl-basic", {"aspect_ratio": "wide"}, "input.params.aspect_ratio", "aspect ratio"),
        ("image/blur", {"count": 2}, "input.params.count", "no seed input"),
    ],
)
def test_edit_problems_have_paths(name: str, params: dict[str, JsonValue], path: str, message: str) -> None:
    template = load_template(LIBRARY, name)
    edits, rest = split_edit_params(params, template.params())
    required = {"prompt": "x", "image": "face"}
    bound = bind_template(template, {k: v for k, v in required.items() if k in template.params()} | rest)
    with pytest.raises(BindingError) as info:
        apply_edits(bound, edits, media_names=["face"])
    [problem] = info.value.problems
    assert problem.path == path and message in problem.message


def test_speech_text_is_prepared_for_audio_templates_only() -> None:
    template = load_template(LIBRARY, "audio/f5-tts", character="mira")
    params = prepare_speech_params({"text": "**Hi!** It's $5 🎉", "speed": 1.2}, template.kind)
    assert params == {"text": "Hi! It's five dollars", "speed": 1.2}
    bound = bind_template(template, params, media_names=["mira_voice.wav"])
    assert bound.graph["2"]["inputs"]["speech"] == "Hi! It's five dollars"
    assert prepare_speech_params({"text": "$5"}, "image") == {"text": "$5"}
