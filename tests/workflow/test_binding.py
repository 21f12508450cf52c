"""Binding: manifest params, placeholders and overrides through one mechanism; every problem at once."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.contract import ErrorCode, SeedUsed
from handlers.workflow import (
    RANDOM_SEED_MAX,
    BindingError,
    CharacterProfile,
    ParamType,
    TemplateManifest,
    bind,
    bind_template,
    load_template,
)
from tests.conftest import REPO

EXAMPLES = REPO / "workflows"

GRAPH: dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 5,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "denoise": 1.0,
            "model": ["4", 0],
            "add_noise": True,
        },
        "_meta": {"title": "KSampler"},
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}, "_meta": {"title": "Load"}},
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "{{prompt}}", "clip": ["4", 1]},
        "_meta": {"title": "Prompt"},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "neg", "clip": ["4", 1]}, "_meta": {"title": "Text"}},
    "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "other", "clip": ["4", 1]}, "_meta": {"title": "Text"}},
    "7:1": {"class_type": "KSampler", "inputs": {"noise_seed": 9, "steps": 4}, "_meta": {"title": "Inner v1.2"}},
    "10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Face"}},
}


def make_manifest(*params: dict[str, Any]) -> TemplateManifest:
    return TemplateManifest.model_validate({"name": "t", "kind": "image", "params": list(params)})


def problems_of(exc: pytest.ExceptionInfo[BindingError]) -> dict[str, str]:
    return {p.path: p.message for p in exc.value.problems}


STEPS = {
    "name": "steps",
    "type": "int",
    "min": 1,
    "max": 50,
    "default": 20,
    "binds": [{"node": "KSampler", "input": "steps"}],
}
CFG = {"name": "cfg", "type": "float", "min": 0, "max": 30, "binds": [{"node": "3", "input": "cfg"}]}
SEED = {"name": "seed", "type": "seed", "binds": [{"node": "KSampler", "input": "seed"}]}
FACE = {"name": "face", "type": "image", "binds": [{"node": "Face", "input": "image"}]}


# -- the input graph is never modified ------------------------------------------------------------------------------


def test_input_graph_is_not_mutated() -> None:
    before = copy.deepcopy(GRAPH)
    bound = bind(
        GRAPH, {"prompt": "cat", "steps": 7}, {"Load.ckpt_name": "b.safetensors"}, manifest=make_manifest(STEPS)
    )
    assert before == GRAPH
    assert bound.graph is not GRAPH
    assert bound.graph["6"]["inputs"]["text"] == "cat"
    assert bound.graph["3"]["inputs"]["steps"] == 7
    assert bound.graph["4"]["inputs"]["ckpt_name"] == "b.safetensors"
    bound.graph["3"]["inputs"]["model"].append("x")
    assert GRAPH["3"]["inputs"]["model"] == ["4", 0]


# -- manifest params --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [(7, 7), ("12", 12), (3.0, 3), (" 4 ", 4)])
def test_int_coercion(given: Any, expected: int) -> None:
    bound = bind(GRAPH, {"prompt": "p", "steps": given}, manifest=make_manifest(STEPS))
    assert bound.graph["3"]["inputs"]["steps"] == expected
    assert type(bound.graph["3"]["inputs"]["steps"]) is int


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (0, "must be >= 1 (got 0)"),
        (51, "must be <= 50 (got 51)"),
        (2.5, "must be an integer (got 2.5)"),
        ("ten", "must be an integer (got 'ten')"),
        (True, "must be an integer (got True)"),
        (None, "must be an integer (got None)"),
        ([1], "must be an integer (got [1])"),
    ],
)
def test_int_rejections(given: Any, message: str) -> None:
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {"prompt": "p", "steps": given}, manifest=make_manifest(STEPS))
    assert problems_of(info) == {"input.params.steps": message}


@pytest.mark.parametrize(("given", "expected"), [(7, 7.0), ("6.5", 6.5), (0, 0.0)])
def test_float_coercion(given: Any, expected: float) -> None:
    bound = bind(GRAPH, {"prompt": "p", "cfg": given}, manifest=make_manifest(CFG))
    assert bound.graph["3"]["inputs"]["cfg"] == expected and isinstance(bound.graph["3"]["inputs"]["cfg"], float)


@pytest.mark.parametrize(("given", "message"), [("nan", "finite"), (31, "must be <= 30"), (False, "must be a number")])
def test_float_rejections(given: Any, message: str) -> None:
    with pytest.raises(BindingError, match=message):
        bind(GRAPH, {"prompt": "p", "cfg": given}, manifest=make_manifest(CFG))


@pytest.mark.parametrize(
    ("given", "expected"), [(True, True), ("false", False), ("YES", True), (0, False), ("1", True)]
)
def test_bool_coercion(given: Any, expected: bool) -> None:
    noise = {"name": "noise", "type": "bool", "binds": [{"node": "3", "input": "add_noise"}]}
    bound = bind(GRAPH, {"prompt": "p", "noise": given}, manifest=make_manifest(noise))
    assert bound.graph["3"]["inputs"]["add_noise"] is expected


@pytest.mark.parametrize("given", [2, "maybe", None, 1.5])
def test_bool_rejections(given: Any) -> None:
    noise = {"name": "noise", "type": "bool", "binds": [{"node": "3", "input": "add_noise"}]}
    with pytest.raises(BindingError, match="must be a boolean"):
        bind(GRAPH, {"prompt": "p", "noise": given}, manifest=make_manifest(noise))


def test_string_coercion() -> None:
    neg = {"name": "negative", "type": "string", "binds": [{"node": "7", "input": "text"}]}
    assert (
        bind(GRAPH, {"prompt": "p", "negative": 12}, manifest=make_manifest(neg)).graph["7"]["inputs"]["text"] == "12"
    )
    with pytest.raises(BindingError, match="must be a string"):
        bind(GRAPH, {"prompt": "p", "negative": {"a": 1}}, manifest=make_manifest(neg))


def test_choice() -> None:
    sampler = {
        "name": "sampler",
        "type": "choice",
        "choices": ["euler", "dpmpp_2m"],
        "binds": [{"node": "3", "input": "sampler_name"}],
    }
    bound = bind(GRAPH, {"prompt": "p", "sampler": "dpmpp_2m"}, manifest=make_manifest(sampler))
    assert bound.graph["3"]["inputs"]["sampler_name"] == "dpmpp_2m"
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {"prompt": "p", "sampler": "ddim"}, manifest=make_manifest(sampler))
    assert problems_of(info) == {"input.params.sampler": "must be one of ['euler', 'dpmpp_2m'] (got 'ddim')"}


def test_choice_compares_types() -> None:
    steps = {"name": "steps", "type": "choice", "choices": [1, 2], "binds": [{"node": "3", "input": "steps"}]}
    with pytest.raises(BindingError, match="must be one of"):
        bind(GRAPH, {"prompt": "p", "steps": True}, manifest=make_manifest(steps))


def test_defaults_apply_and_optional_params_leave_the_graph_alone() -> None:
    bound = bind(GRAPH, {"prompt": "p"}, manifest=make_manifest({**STEPS, "default": 33}, CFG))
    assert bound.graph["3"]["inputs"]["steps"] == 33  # default
    assert bound.graph["3"]["inputs"]["cfg"] == 8  # cfg has no default: the graph's value stays
    assert bound.params == {"steps": 33, "prompt": "p"}


def test_required_params() -> None:
    required = {"name": "negative", "type": "string", "required": True, "binds": [{"node": "7", "input": "text"}]}
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {}, manifest=make_manifest(required))
    assert problems_of(info) == {"input.params.negative": "is required", "input.params.prompt": "is required"}


def test_one_param_can_bind_several_inputs() -> None:
    both = {
        "name": "steps",
        "type": "int",
        "binds": [{"node": "3", "input": "steps"}, {"node": "Inner v1.2", "input": "steps"}],
    }
    bound = bind(GRAPH, {"prompt": "p", "steps": 9}, manifest=make_manifest(both))
    assert bound.graph["3"]["inputs"]["steps"] == 9 and bound.graph["7:1"]["inputs"]["steps"] == 9


# -- seeds -----------------------------------------------------------------------------------------------------------


def test_absent_seed_is_random_and_reported() -> None:
    bound = bind(GRAPH, {"prompt": "p"}, manifest=make_manifest(SEED), rng=random.Random(7))
    value = bound.graph["3"]["inputs"]["seed"]
    assert value == random.Random(7).randint(0, RANDOM_SEED_MAX)
    assert bound.params["seed"] == value
    assert SeedUsed(node_id="3", input="seed", value=value, param="seed", random=True) in bound.seeds


def test_minus_one_seed_is_random() -> None:
    a = bind(GRAPH, {"prompt": "p", "seed": -1}, manifest=make_manifest(SEED), rng=random.Random(1))
    b = bind(GRAPH, {"prompt": "p", "seed": "-1"}, manifest=make_manifest(SEED), rng=random.Random(2))
    assert a.graph["3"]["inputs"]["seed"] != b.graph["3"]["inputs"]["seed"]
    assert 0 <= a.graph["3"]["inputs"]["seed"] <= RANDOM_SEED_MAX


def test_random_seed_respects_declared_bounds() -> None:
    small = {**SEED, "min": 10, "max": 12}
    for n in range(20):
        value = bind(GRAPH, {"prompt": "p"}, manifest=make_manifest(small), rng=random.Random(n)).graph["3"]["inputs"][
            "seed"
        ]
        assert 10 <= value <= 12


def test_explicit_seed_is_kept_and_reported() -> None:
    big = 2**64 - 1
    bound = bind(GRAPH, {"prompt": "p", "seed": big}, manifest=make_manifest(SEED))
    assert bound.graph["3"]["inputs"]["seed"] == big
    assert SeedUsed(node_id="3", input="seed", value=big, param="seed", random=False) in bound.seeds


@pytest.mark.parametrize("given", [-2, 2**64, "x", 1.5])
def test_bad_seeds(given: Any) -> None:
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {"prompt": "p", "seed": given}, manifest=make_manifest(SEED))
    assert "-1 for a random" in problems_of(info)["input.params.seed"]


def test_unbound_seed_inputs_are_reported_too() -> None:
    bound = bind(GRAPH, {"prompt": "p"})
    assert bound.seeds == [
        SeedUsed(node_id="3", input="seed", value=5),
        SeedUsed(node_id="7:1", input="noise_seed", value=9),
    ]


def test_override_seed_minus_one_is_random() -> None:
    bound = bind(GRAPH, {"prompt": "p"}, {"7:1.noise_seed": -1}, rng=random.Random(3))
    value = bound.graph["7:1"]["inputs"]["noise_seed"]
    assert value == random.Random(3).randint(0, RANDOM_SEED_MAX)
    assert SeedUsed(node_id="7:1", input="noise_seed", value=value, random=True) in bound.seeds


# -- placeholders ----------------------------------------------------------------------------------------------------


def test_placeholder_without_manifest() -> None:
    bound = bind(GRAPH, {"prompt": "a cat"})
    assert bound.graph["6"]["inputs"]["text"] == "a cat"
    assert bound.params == {"prompt": "a cat"}


def test_placeholder_is_required_without_a_default() -> None:
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {})
    assert problems_of(info) == {"input.params.prompt": "is required"}


def test_untyped_placeholder_keeps_any_json_value() -> None:
    assert bind(GRAPH, {"prompt": [1, {"a": None}]}).graph["6"]["inputs"]["text"] == [1, {"a": None}]


def test_manifest_param_typed_through_its_placeholder() -> None:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": "{{size}}", "height": "{{size}}"}}}
    size = {"name": "size", "type": "int", "min": 8, "max": 64, "default": 16}
    bound = bind(graph, {"size": "32"}, manifest=make_manifest(size))
    assert bound.graph["1"]["inputs"] == {"width": 32, "height": 32}
    assert bind(graph, {}, manifest=make_manifest(size)).graph["1"]["inputs"] == {"width": 16, "height": 16}
    with pytest.raises(BindingError, match="must be <= 64"):
        bind(graph, {"size": 100}, manifest=make_manifest(size))


# -- overrides -------------------------------------------------------------------------------------------------------


def test_override_by_id_title_and_subgraph_id() -> None:
    bound = bind(
        GRAPH,
        {"prompt": "p"},
        {"3.steps": 11, "Load.ckpt_name": "x.safetensors", "7:1.steps": 2, "Inner v1.2.noise_seed": 4},
    )
    assert bound.graph["3"]["inputs"]["steps"] == 11
    assert bound.graph["4"]["inputs"]["ckpt_name"] == "x.safetensors"
    assert bound.graph["7:1"]["inputs"]["steps"] == 2
    assert bound.graph["7:1"]["inputs"]["noise_seed"] == 4


def test_override_is_typed_like_the_value_it_replaces() -> None:
    bound = bind(GRAPH, {"prompt": "p"}, {"3.steps": "12", "3.cfg": 7.5, "3.denoise": "0.5", "3.add_noise": "false"})
    inputs = bound.graph["3"]["inputs"]
    assert inputs["steps"] == 12 and type(inputs["steps"]) is int
    assert inputs["cfg"] == 7.5  # an int in the graph may be a float input written without a fraction
    assert inputs["denoise"] == 0.5 and inputs["add_noise"] is False
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {"prompt": "p"}, {"3.steps": "many", "3.add_noise": "perhaps", "Load.ckpt_name": None})
    assert set(problems_of(info)) == {
        'input.overrides["3.steps"]',
        'input.overrides["3.add_noise"]',
        'input.overrides["Load.ckpt_name"]',
    }


def test_override_wins_over_a_param() -> None:
    bound = bind(GRAPH, {"prompt": "p", "steps": 10}, {"KSampler.steps": 40}, manifest=make_manifest(STEPS))
    assert bound.graph["3"]["inputs"]["steps"] == 40


def test_override_of_a_bound_seed_replaces_its_record() -> None:
    bound = bind(GRAPH, {"prompt": "p", "seed": 1}, {"3.seed": 2}, manifest=make_manifest(SEED))
    assert [s for s in bound.seeds if s.node_id == "3"] == [SeedUsed(node_id="3", input="seed", value=2)]


def test_override_replacing_a_link_warns() -> None:
    bound = bind(GRAPH, {"prompt": "p"}, {"3.model": "x"})
    assert bound.graph["3"]["inputs"]["model"] == "x"
    assert bound.warnings == ["override '3.model' replaced the link from node 4 output 0 with a value"]


def test_override_of_a_placeholder_input_uses_the_params_type() -> None:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": "{{size}}"}}}
    size = {"name": "size", "type": "int", "default": 16}
    assert bind(graph, {}, {"1.width": "24"}, manifest=make_manifest(size)).graph["1"]["inputs"]["width"] == 24


# -- media -----------------------------------------------------------------------------------------------------------


def test_media_param_records_targets_and_stages() -> None:
    bound = bind(GRAPH, {"prompt": "p", "face": "me.png"}, manifest=make_manifest(FACE), media_names={"me.png"})
    [media] = bound.media
    assert (media.param, media.type, media.value, media.from_job, media.targets) == (
        "face",
        ParamType.IMAGE,
        "me.png",
        True,
        (("10", "image"),),
    )
    staged = bound.with_staged({"me.png": "job-1/me.png"})
    assert staged["10"]["inputs"]["image"] == "job-1/me.png"
    assert bound.graph["10"]["inputs"]["image"] == "me.png"  # with_staged copies
    with pytest.raises(KeyError, match=r"me\.png"):
        bound.with_staged({})


def test_media_param_must_name_a_media_item() -> None:
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {"prompt": "p", "face": "other.png"}, manifest=make_manifest(FACE), media_names={"me.png"})
    assert problems_of(info) == {"input.params.face": "names no media item 'other.png' (media: me.png)"}


def test_media_default_is_an_existing_input_file() -> None:
    bound = bind(GRAPH, {"prompt": "p"}, manifest=make_manifest({**FACE, "default": "example.png"}), media_names=set())
    [media] = bound.media
    assert media.from_job is False
    assert bound.with_staged({})["10"]["inputs"]["image"] == "example.png"


@pytest.mark.parametrize("value", ["../etc/passwd", "/abs.png", "", "a/../../b.png"])
def test_media_values_cannot_traverse(value: str) -> None:
    with pytest.raises(BindingError, match="must name a media item"):
        bind(GRAPH, {"prompt": "p", "face": value}, manifest=make_manifest(FACE))


# -- every problem at once -------------------------------------------------------------------------------------------


def test_every_problem_is_collected() -> None:
    with pytest.raises(BindingError) as info:
        bind(
            GRAPH,
            {"steps": 0, "bogus": 1},
            {"Nope.x": 1, "KSampler.nope": 2, "Text.text": "x", "noinput": 1},
            manifest=make_manifest(STEPS),
        )
    found = problems_of(info)
    assert found == {
        "input.params.bogus": "is not a parameter (parameters: steps, prompt)",
        "input.params.steps": "must be >= 1 (got 0)",
        "input.params.prompt": "is required",
        'input.overrides["Nope.x"]': "no node with id or title 'Nope'",
        'input.overrides["KSampler.nope"]': (
            "node 3 (KSampler) has no input 'nope' (inputs: add_noise, cfg, denoise, model, sampler_name, seed, steps)"
        ),
        'input.overrides["Text.text"]': "title 'Text' is ambiguous: nodes 7, 8 share it (address one by id)",
        "input.overrides.noinput": "override key 'noinput' must be '<node id or title>.<input>'",
    }
    error = info.value.to_job_error(job_id="j")
    assert error.code is ErrorCode.INVALID_INPUT and error.retryable is False and error.job_id == "j"
    assert len(error.problems) == 7
    assert error.message.endswith("(and 4 more)")
    assert str(info.value).startswith("7 problems binding")


def test_params_on_a_workflow_without_parameters() -> None:
    graph = {"1": {"class_type": "X", "inputs": {"a": 1}}}
    with pytest.raises(BindingError) as info:
        bind(graph, {"a": 1})
    assert problems_of(info) == {
        "input.params.a": "is not a parameter (parameters: none: this workflow takes no parameters)"
    }


def test_id_wins_over_a_title_that_looks_like_an_id() -> None:
    graph = {
        "1": {"class_type": "X", "inputs": {"a": 1}},
        "2": {"class_type": "X", "inputs": {"a": 2}, "_meta": {"title": "1"}},
    }
    assert bind(graph, {}, {"1.a": 5}).graph == {"1": {"class_type": "X", "inputs": {"a": 5}}, **{"2": graph["2"]}}


@pytest.mark.parametrize("graph", [{}, [], {"1": {"class_type": "X", "inputs": 3}}])
def test_bad_graphs(graph: Any) -> None:
    with pytest.raises(BindingError) as info:
        bind(graph, {})
    assert info.value.problems[0].path == "input.workflow"


# -- characters and the example templates ---------------------------------------------------------------------------


def test_character_defaults_apply_only_to_what_the_caller_did_not_give() -> None:
    profile = CharacterProfile(name="A", defaults={"steps": 30, "prompt": "from character", "unrelated": 1})
    bound = bind(GRAPH, {"prompt": "from caller"}, manifest=make_manifest(STEPS), profile=profile)
    assert bound.graph["6"]["inputs"]["text"] == "from caller"
    assert bound.graph["3"]["inputs"]["steps"] == 30


def test_bad_character_default_is_reported_at_its_source() -> None:
    profile = CharacterProfile(name="A", defaults={"steps": 500})
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {"prompt": "p"}, manifest=make_manifest(STEPS), profile=profile)
    assert problems_of(info) == {"character.defaults.steps": "must be <= 50 (got 500)"}


def test_example_sdxl_binding() -> None:
    template = load_template(EXAMPLES, "image/sdxl-basic")
    bound = bind_template(
        template, {"prompt": "a red fox", "width": 832, "seed": 42}, {"Save Image.filename_prefix": "fox"}
    )
    graph = bound.graph
    assert graph["6"]["inputs"]["text"] == "a red fox"
    assert graph["5"]["inputs"] == {"width": 832, "height": 1024, "batch_size": 1}
    assert graph["3"]["inputs"]["seed"] == 42
    assert graph["9"]["inputs"]["filename_prefix"] == "fox"
    assert bound.seeds == [SeedUsed(node_id="3", input="seed", value=42, param="seed")]
    json.dumps(graph)
    with pytest.raises(BindingError) as info:
        bind_template(template, {"prompt": "x", "width": 5000, "height": 10})
    assert problems_of(info) == {
        "input.params.width": "must be <= 4096 (got 5000)",
        "input.params.height": "must be >= 64 (got 10)",
    }


def test_example_character_binding() -> None:
    template = load_template(EXAMPLES, "image/sdxl-basic", character="ava")
    bound = bind_template(template, {"prompt": "at the beach", "lora_strength": 0.3})
    graph = bound.graph
    assert graph["11"]["inputs"]["string_a"] == "ava_character, freckles"  # trigger words from character.json
    assert graph["11"]["inputs"]["string_b"] == "at the beach"
    assert graph["10"]["inputs"]["strength_model"] == 0.3  # the caller wins
    assert graph["10"]["inputs"]["strength_clip"] == 0.7  # character.json lora
    assert graph["3"]["inputs"]["cfg"] == 6.5  # character.json defaults
    assert graph["7"]["inputs"]["text"].endswith("extra fingers")
    [seed] = bound.seeds
    assert seed.random and seed.param == "seed"


def test_example_blur_and_placeholder_templates() -> None:
    blur = bind_template(
        load_template(EXAMPLES, "image/blur"), {"image": "in.png", "radius": 5}, media_names=["in.png"]
    )
    assert blur.graph["2"]["inputs"]["blur_radius"] == 5
    assert blur.with_staged({"in.png": "j/in.png"})["1"]["inputs"]["image"] == "j/in.png"
    solid = bind_template(load_template(EXAMPLES, "image/solid-color"), {"width": 8, "height": 4, "color": 255})
    assert solid.graph["1"]["inputs"] == {"width": 8, "height": 4, "batch_size": 1, "color": 255}


@given(steps=st.integers(1, 50), cfg=st.floats(0, 30, allow_nan=False), seed=st.integers(0, 2**64 - 1))
def test_valid_values_bind_exactly_and_never_touch_the_input(steps: int, cfg: float, seed: int) -> None:
    before = copy.deepcopy(GRAPH)
    bound = bind(
        GRAPH, {"prompt": "p", "steps": steps, "cfg": cfg, "seed": seed}, manifest=make_manifest(STEPS, CFG, SEED)
    )
    assert before == GRAPH
    assert bound.graph["3"]["inputs"]["steps"] == steps
    assert bound.graph["3"]["inputs"]["cfg"] == cfg
    assert bound.graph["3"]["inputs"]["seed"] == seed


@given(steps=st.one_of(st.integers(max_value=0), st.integers(min_value=51)))
def test_out_of_range_values_are_always_reported(steps: int) -> None:
    with pytest.raises(BindingError) as info:
        bind(GRAPH, {"prompt": "p", "steps": steps}, manifest=make_manifest(STEPS))
    assert list(problems_of(info)) == ["input.params.steps"]


def test_media_named_in_a_graph_bind_only_to_file_inputs() -> None:
    """``add_noise: "enable"`` stays ``"enable"`` when a media item is named ``enable``: only inputs the catalogue
    marks as file uploads bind to media (issue 11, item 11)."""
    import json

    from handlers.workflow import Catalogue, bind
    from tests.conftest import OBJECT_INFO

    catalogue = Catalogue(json.loads(OBJECT_INFO.read_text()))
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "enable"}},
        "2": {
            "class_type": "KSamplerAdvanced",
            "inputs": {"add_noise": "enable", "return_with_leftover_noise": "enable"},
        },
        "3": {"class_type": "LoadAudio", "inputs": {"audio": "voice"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "voice"}},
    }
    bound = bind(graph, media_names=["enable", "voice"], catalogue=catalogue)
    assert {(m.value, m.targets) for m in bound.media} == {("enable", (("1", "image"),)), ("voice", (("3", "audio"),))}
    staged = bound.with_staged({"enable": "job/enable.png", "voice": "job/voice.flac"})
    assert staged["1"]["inputs"]["image"] == "job/enable.png"
    assert staged["2"]["inputs"] == graph["2"]["inputs"]
    assert staged["3"]["inputs"]["audio"] == "job/voice.flac"
    assert staged["4"]["inputs"]["text"] == "voice"
    # Without a catalogue nothing in the graph is taken for a media reference.
    assert bind(graph, media_names=["enable"]).media == []
