"""Template lookup, loading and checks: character folders first, manifests in pydantic, every problem at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from handlers.contract import ErrorCode
from handlers.workflow import (
    CharacterProfile,
    ParamType,
    TemplateInvalidError,
    TemplateManifest,
    TemplateNotFoundError,
    TemplateParam,
    find_placeholders,
    list_templates,
    load_character,
    load_template,
)
from tests.conftest import REPO

EXAMPLES = REPO / "workflows"
GRAPH: dict[str, Any] = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
        "_meta": {"title": "Canvas"},
    },
    "2": {
        "class_type": "SaveImage",
        "inputs": {"images": ["1", 0], "filename_prefix": "t"},
        "_meta": {"title": "Save"},
    },
}


def write_template(root: Path, rel: str, graph: Any, manifest: Any = None) -> Path:
    folder = root / rel
    folder.mkdir(parents=True)
    (folder / "workflow.json").write_text(graph if isinstance(graph, str) else json.dumps(graph))
    if manifest is not None:
        (folder / "template.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return folder


def manifest(*params: dict[str, Any], kind: str = "image") -> dict[str, Any]:
    return {"name": "t", "kind": kind, "params": list(params)}


# -- lookup ---------------------------------------------------------------------------------------------------------


def test_shared_template(tmp_path: Path) -> None:
    write_template(tmp_path, "image/plain", GRAPH)
    template = load_template(tmp_path, "image/plain")
    assert template.name == "image/plain" and template.kind == "image"
    assert template.path == tmp_path / "image" / "plain"
    assert template.manifest is None and template.profile is None and template.character is None
    assert template.graph == GRAPH


def test_character_folder_wins_over_shared(tmp_path: Path) -> None:
    write_template(tmp_path, "image/plain", GRAPH)
    own = {**GRAPH, "2": {**GRAPH["2"], "inputs": {"images": ["1", 0], "filename_prefix": "ava"}}}
    write_template(tmp_path, "ava/image/plain", own)
    template = load_template(tmp_path, "image/plain", character="ava")
    assert template.path == tmp_path / "ava" / "image" / "plain"
    assert template.graph["2"]["inputs"]["filename_prefix"] == "ava"
    assert template.character == "ava"


def test_character_without_own_copy_falls_back_to_shared(tmp_path: Path) -> None:
    write_template(tmp_path, "image/plain", GRAPH)
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "character.json").write_text(json.dumps({"name": "Bob", "defaults": {"x": 1}}))
    template = load_template(tmp_path, "image/plain", character="bob")
    assert template.path == tmp_path / "image" / "plain"
    assert template.profile is not None and template.profile.defaults == {"x": 1}


def test_unknown_template(tmp_path: Path) -> None:
    with pytest.raises(TemplateNotFoundError) as info:
        load_template(tmp_path, "image/nope")
    assert info.value.to_job_error().code is ErrorCode.TEMPLATE_NOT_FOUND
    assert info.value.problems[0].path == "input.template"


def test_unknown_character(tmp_path: Path) -> None:
    write_template(tmp_path, "image/plain", GRAPH)
    with pytest.raises(TemplateNotFoundError, match="unknown character 'zed'") as info:
        load_template(tmp_path, "image/plain", character="zed")
    assert info.value.problems[0].path == "input.character"


@pytest.mark.parametrize("name", ["plain", "image/../image/plain", "../x/y", "image/Plain", "/image/plain", "a/b/c"])
def test_template_names_cannot_escape_the_root(tmp_path: Path, name: str) -> None:
    write_template(tmp_path, "image/plain", GRAPH)
    with pytest.raises(TemplateNotFoundError):
        load_template(tmp_path, name)


@pytest.mark.parametrize("character", ["..", "../image", "a/b", ""])
def test_character_names_cannot_escape_the_root(tmp_path: Path, character: str) -> None:
    write_template(tmp_path, "image/plain", GRAPH)
    with pytest.raises(TemplateNotFoundError):
        load_template(tmp_path, "image/plain", character=character)


def test_folder_without_workflow_is_not_a_template(tmp_path: Path) -> None:
    (tmp_path / "image" / "empty").mkdir(parents=True)
    with pytest.raises(TemplateNotFoundError):
        load_template(tmp_path, "image/empty")


def test_list_templates(tmp_path: Path) -> None:
    write_template(tmp_path, "image/a", GRAPH)
    write_template(tmp_path, "video/b", GRAPH)
    write_template(tmp_path, "ava/image/a", GRAPH)
    (tmp_path / "ava" / "character.json").write_text('{"name": "Ava"}')
    write_template(tmp_path, "zoe/audio/c", GRAPH)  # a character folder without character.json
    assert list_templates(tmp_path) == [
        ("ava", "image/a"),
        (None, "image/a"),
        (None, "video/b"),
        ("zoe", "audio/c"),
    ]
    assert list_templates(tmp_path / "missing") == []


# -- checks -----------------------------------------------------------------------------------------------------------


def test_invalid_json_is_reported(tmp_path: Path) -> None:
    write_template(tmp_path, "image/bad", "{not json", "{also not")
    with pytest.raises(TemplateInvalidError) as info:
        load_template(tmp_path, "image/bad")
    assert [p.path for p in info.value.problems] == ["workflow.json", "template.json"]
    assert info.value.to_job_error().code is ErrorCode.WORKFLOW_INVALID


def test_ui_workflow_is_refused_as_a_template(tmp_path: Path) -> None:
    write_template(tmp_path, "image/ui", {"nodes": [], "links": []})
    with pytest.raises(TemplateInvalidError, match="API format"):
        load_template(tmp_path, "image/ui")


def test_nodes_without_class_type_are_reported(tmp_path: Path) -> None:
    write_template(tmp_path, "image/bad", {"1": {"inputs": {}}, "2": GRAPH["2"], "x": 3})
    with pytest.raises(TemplateInvalidError) as info:
        load_template(tmp_path, "image/bad")
    assert [p.path for p in info.value.problems] == ['workflow["1"]', "workflow.x"]


def test_every_manifest_problem_at_once(tmp_path: Path) -> None:
    bad = manifest(
        {"name": "w", "type": "int", "binds": [{"node": "Nope", "input": "width"}]},
        {"name": "h", "type": "int", "binds": [{"node": "Canvas", "input": "hieght"}]},
        {"name": "lonely", "type": "string"},
        {"name": "twin", "type": "int", "binds": [{"node": "1", "input": "color"}]},
        {"name": "twin2", "type": "int", "binds": [{"node": "Canvas", "input": "color"}]},
    )
    write_template(tmp_path, "image/bad", GRAPH, bad)
    with pytest.raises(TemplateInvalidError) as info:
        load_template(tmp_path, "image/bad")
    found = {p.path: p.message for p in info.value.problems}
    assert found["template.params.w.binds[0]"] == "no node with id or title 'Nope'"
    assert found["template.params.h.binds[0]"].startswith("node 1 (EmptyImage) has no input 'hieght'")
    assert found["template.params.lonely"] == 'binds no node input and the graph has no "{{lonely}}"'
    assert found["template.params.twin2"] == "node 1 input 'color' is already bound by 'twin'"
    assert len(found) == 4


def test_ambiguous_title_in_a_bind(tmp_path: Path) -> None:
    graph = {**GRAPH, "3": {"class_type": "EmptyImage", "inputs": {"width": 1}, "_meta": {"title": "Canvas"}}}
    write_template(
        tmp_path,
        "image/amb",
        graph,
        manifest({"name": "w", "type": "int", "binds": [{"node": "Canvas", "input": "width"}]}),
    )
    with pytest.raises(TemplateInvalidError, match="ambiguous: nodes 1, 3 share it"):
        load_template(tmp_path, "image/amb")


def test_manifest_schema_errors_have_paths(tmp_path: Path) -> None:
    write_template(
        tmp_path,
        "image/bad",
        GRAPH,
        {"name": "t", "kind": "image", "params": [{"name": "x", "type": "colour"}], "oops": 1},
    )
    with pytest.raises(TemplateInvalidError) as info:
        load_template(tmp_path, "image/bad")
    assert {p.path for p in info.value.problems} == {"template.params[0].type", "template.oops"}


def test_manifest_kind_must_match_the_folder(tmp_path: Path) -> None:
    write_template(tmp_path, "image/k", GRAPH, manifest(kind="video"))
    with pytest.raises(TemplateInvalidError) as info:
        load_template(tmp_path, "image/k")
    assert info.value.problems[0].path == "template.kind"


def test_invalid_character_json(tmp_path: Path) -> None:
    write_template(tmp_path, "image/plain", GRAPH)
    (tmp_path / "ava").mkdir()
    (tmp_path / "ava" / "character.json").write_text(json.dumps({"name": "Ava", "loras": [{"strength_model": 1}]}))
    with pytest.raises(TemplateInvalidError) as info:
        load_template(tmp_path, "image/plain", character="ava")
    assert [p.path for p in info.value.problems] == [
        "character.loras[0].file",
        "character.loras[0].url",
        "character.loras[0].sha256",
        "character.loras[0].size",
    ]


def test_character_folder_without_profile_has_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "cy").mkdir()
    assert load_character(tmp_path, "cy") == CharacterProfile(name="cy")


# -- manifest model ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ({"name": "c", "type": "choice"}, "type choice needs choices"),
        ({"name": "b", "type": "bool", "choices": [True]}, "choices do not apply"),
        ({"name": "i", "type": "int", "min": 5, "max": 1}, "min 5.0 > max 1.0"),
        ({"name": "s", "type": "seed", "default": 42}, "a seed's default can only be -1"),
        ({"name": "r", "type": "int", "required": True, "default": 1}, "required parameters take no default"),
        ({"name": "d", "type": "int", "max": 10, "default": 11}, "default must be <= 10"),
        ({"name": "e", "type": "choice", "choices": ["a"], "default": "b"}, "default must be one of"),
        ({"name": "1x", "type": "int"}, "String should match pattern"),
    ],
)
def test_param_declarations_are_checked(param: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TemplateParam.model_validate(param)


def test_duplicate_param_names() -> None:
    with pytest.raises(ValidationError, match="parameter names must be unique: a"):
        TemplateManifest.model_validate(manifest({"name": "a", "type": "int"}, {"name": "a", "type": "float"}))


def test_models_and_custom_nodes_are_validated() -> None:
    good = {
        **manifest(),
        "models": [{"file": "x.safetensors", "folder": "checkpoints", "url": "https://h.test/x.safetensors"}],
        "custom_nodes": [{"repo": "https://github.com/o/r", "commit": "a" * 40}],
    }
    parsed = TemplateManifest.model_validate(good)
    assert parsed.models[0].folder == "checkpoints" and parsed.custom_nodes[0].commit == "a" * 40
    with pytest.raises(ValidationError) as info:
        TemplateManifest.model_validate(
            {
                **good,
                "models": [{"file": "x", "folder": "../etc", "url": "ftp://x"}],
                "custom_nodes": [{"repo": "https://g/r", "commit": "main"}],
            }
        )
    locations = {tuple(e["loc"]) for e in info.value.errors()}
    assert locations == {("models", 0, "folder"), ("models", 0, "url"), ("custom_nodes", 0, "commit")}


# Character packs (character.json): tests/workflow/test_character.py.


# -- placeholders and per-template schema ----------------------------------------------------------------------------


def test_placeholders_are_whole_values_only() -> None:
    graph = {
        "1": {
            "class_type": "A",
            "inputs": {"a": "{{x}}", "b": "{{ y }}", "c": "pre {{z}}", "d": "{{x}}", "e": ["2", 0]},
        },
        "2": {"class_type": "B", "inputs": {"a": "{{x}}", "b": "{{1bad}}", "c": 5}},
    }
    assert find_placeholders(graph) == {"x": [("1", "a"), ("1", "d"), ("2", "a")], "y": [("1", "b")]}


def test_params_schema_of_a_manifest_template(tmp_path: Path) -> None:
    write_template(
        tmp_path,
        "image/s",
        {**GRAPH, "1": {**GRAPH["1"], "inputs": {**GRAPH["1"]["inputs"], "batch_size": "{{count}}"}}},
        manifest(
            {
                "name": "width",
                "type": "int",
                "min": 16,
                "max": 4096,
                "step": 8,
                "default": 64,
                "binds": [{"node": "Canvas", "input": "width"}],
            },
            {
                "name": "color",
                "type": "choice",
                "choices": [0, 255],
                "required": True,
                "binds": [{"node": "1", "input": "color"}],
            },
            {"name": "seed", "type": "seed", "binds": [{"node": "1", "input": "height"}]},
        ),
    )
    schema = load_template(tmp_path, "image/s").params_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["width"] == {
        "type": "integer",
        "minimum": 16,
        "maximum": 4096,
        "multipleOf": 8,
        "default": 64,
        "x-param-type": "int",
    }
    assert schema["properties"]["color"]["enum"] == [0, 255]
    assert schema["properties"]["seed"]["minimum"] == -1
    assert schema["properties"]["count"] == {"description": "placeholder (any JSON)"}
    assert schema["required"] == ["color", "count"]


def test_character_defaults_make_params_optional_in_the_schema(tmp_path: Path) -> None:
    write_template(
        tmp_path,
        "image/s",
        GRAPH,
        manifest({"name": "color", "type": "int", "required": True, "binds": [{"node": "1", "input": "color"}]}),
    )
    (tmp_path / "ava").mkdir()
    (tmp_path / "ava" / "character.json").write_text(
        json.dumps({"name": "Ava", "defaults": {"color": 7, "unrelated": 1}})
    )
    assert load_template(tmp_path, "image/s").params_schema()["required"] == ["color"]
    schema = load_template(tmp_path, "image/s", character="ava").params_schema()
    assert "required" not in schema
    assert schema["properties"]["color"]["default"] == 7
    assert "unrelated" not in schema["properties"]


def test_media_param_schema() -> None:
    schema = TemplateParam(name="face", type=ParamType.IMAGE, binds=[]).json_schema()
    assert schema["type"] == "string" and schema["x-param-type"] == "image"


# -- the example templates in workflows/ ------------------------------------------------------------------------------


def test_examples_all_load() -> None:
    listed = list_templates(EXAMPLES)
    assert ("ava", "image/sdxl-basic") in listed and (None, "image/sdxl-basic") in listed
    for character, name in listed:
        template = load_template(EXAMPLES, name, character=character)
        assert template.graph
        template.params_schema()


def test_example_sdxl_manifest() -> None:
    template = load_template(EXAMPLES, "image/sdxl-basic")
    assert template.manifest is not None
    names = [p.name for p in template.manifest.params]
    for expected in ["prompt", "negative", "width", "height", "steps", "cfg", "seed", "checkpoint"]:
        assert expected in names
    [model] = template.manifest.models
    assert (model.file, model.folder) == ("sd_xl_base_1.0.safetensors", "checkpoints")
    assert model.url.startswith("https://huggingface.co/stabilityai/")
    assert template.params_schema()["required"] == ["prompt"]


def test_example_character_override() -> None:
    template = load_template(EXAMPLES, "image/sdxl-basic", character="ava")
    assert template.path == EXAMPLES / "ava" / "image" / "sdxl-basic"
    assert template.profile is not None and template.profile.lora is not None
    classes = {node["class_type"] for node in template.graph.values()}
    assert "LoraLoader" in classes


def test_template_and_binding_names_are_exported() -> None:
    from handlers import workflow

    mine = {
        "Bind",
        "BindingError",
        "BoundWorkflow",
        "CharacterLora",
        "CharacterProfile",
        "CharacterVoice",
        "CustomNode",
        "MEDIA_TYPES",
        "MediaBinding",
        "ModelFile",
        "ParamSpec",
        "ParamType",
        "RANDOM_SEED_MAX",
        "SEED_INPUTS",
        "Template",
        "TemplateError",
        "TemplateInvalidError",
        "TemplateManifest",
        "TemplateNotFoundError",
        "TemplateParam",
        "bind",
        "bind_template",
        "find_placeholders",
        "list_templates",
        "load_character",
        "load_template",
    }
    assert mine <= set(workflow.__all__)
    for name in mine:
        assert getattr(workflow, name) is not None
