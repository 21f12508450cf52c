"""A template's manifest may declare the graph's own placeholder strings (Chorus-style ``__CHORUS_PROMPT__``), each
standing for one of its parameters, so such workflows drop in unchanged; ``{{name}}`` keeps working beside them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from handlers.workflow import (
    BindingError,
    TemplateInvalidError,
    bind_template,
    load_template,
    resolve_template,
)
from tests.workflow.test_templates import write_template

CHORUS_GRAPH: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "__CHORUS_PROMPT__", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": " __CHORUS_NEGATIVE__ ", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "{{width}}", "height": 1024, "batch_size": 1}},
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": "__CHORUS_SEED__",
            "steps": 20,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "10": {"class_type": "LoadImage", "inputs": {"image": "__CHORUS_REFERENCE__"}},
}
CHORUS_MANIFEST: dict[str, Any] = {
    "name": "chorus",
    "kind": "image",
    "params": [
        {"name": "prompt", "type": "string", "required": True},
        {"name": "negative", "type": "string", "default": "blurry"},
        {"name": "seed", "type": "seed", "default": -1},
        {"name": "width", "type": "int", "default": 512, "min": 64, "max": 2048},
        {"name": "reference", "type": "image", "required": True},
    ],
    "placeholders": {
        "__CHORUS_PROMPT__": "prompt",
        "__CHORUS_NEGATIVE__": "negative",
        "__CHORUS_SEED__": "seed",
        "__CHORUS_REFERENCE__": "reference",
    },
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_template(tmp_path, "image/chorus", CHORUS_GRAPH, CHORUS_MANIFEST)
    return tmp_path


def test_declared_strings_bind_like_double_brace_placeholders(root: Path) -> None:
    template = load_template(root, "image/chorus")
    assert template.placeholders == {
        "prompt": [("6", "text")],
        "negative": [("7", "text")],
        "width": [("5", "width")],
        "seed": [("3", "seed")],
        "reference": [("10", "image")],
    }
    bound = bind_template(
        template, {"prompt": "a fox", "reference": "face"}, {}, media_names={"face"}, rng=random.Random(1)
    )
    graph = bound.graph
    assert graph["6"]["inputs"]["text"] == "a fox" and graph["7"]["inputs"]["text"] == "blurry"
    assert graph["5"]["inputs"]["width"] == 512
    (seed,) = bound.seeds
    assert isinstance(graph["3"]["inputs"]["seed"], int) and seed.param == "seed" and seed.random
    # The media parameter's loader is rewritten to the staged file like any other.
    assert bound.with_staged({"face": "job-1/face.png"})["10"]["inputs"]["image"] == "job-1/face.png"
    schema = template.params_schema()
    assert schema["required"] == ["prompt", "reference"]


def test_a_missing_value_or_a_bad_override_is_reported(root: Path) -> None:
    template = load_template(root, "image/chorus")
    with pytest.raises(BindingError) as caught:
        bind_template(template, {"reference": "face"}, {"3.seed": "soon"}, media_names={"face"})
    assert {p.path for p in caught.value.problems} == {"input.params.prompt", 'input.overrides["3.seed"]'}


def test_resolve_uses_the_declared_strings_too(root: Path) -> None:
    template = load_template(root, "image/chorus")
    bound = resolve_template(template, {"prompt": "a fox", "reference": "face", "seed": 7}, {}, media_names={"face"})
    assert bound.graph["3"]["inputs"]["seed"] == 7


def test_a_declared_string_must_name_a_parameter(tmp_path: Path) -> None:
    manifest = {**CHORUS_MANIFEST, "placeholders": {**CHORUS_MANIFEST["placeholders"], "__CHORUS_TEXT__": "text"}}
    write_template(tmp_path, "image/chorus", CHORUS_GRAPH, manifest)
    with pytest.raises(TemplateInvalidError) as caught:
        load_template(tmp_path, "image/chorus")
    assert "'__CHORUS_TEXT__' -> 'text'" in str(caught.value)


def test_a_parameter_whose_string_is_not_in_the_graph_binds_nothing(tmp_path: Path) -> None:
    graph = {k: v for k, v in CHORUS_GRAPH.items() if k != "7"}
    write_template(tmp_path, "image/chorus", graph, CHORUS_MANIFEST)
    with pytest.raises(TemplateInvalidError) as caught:
        load_template(tmp_path, "image/chorus")
    (problem,) = caught.value.problems
    assert problem.path == "template.params.negative"
    assert problem.message == 'binds no node input and the graph has no "{{negative}}" or "__CHORUS_NEGATIVE__"'
