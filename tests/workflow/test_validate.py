"""Validation of API graphs in ComfyUI's own vocabulary: recorded 400 bodies of a real ComfyUI, then unit rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handlers.workflow import Catalogue, ValidationReport, validate
from tests.workflow.test_catalogue import CATALOGUE

CAT = Catalogue(CATALOGUE)

# Transcripts whose request the real ComfyUI 0.3.64 rejected with HTTP 400.
_REJECTED = [
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
    "91_int_link_id",
]
# Accepted as a whole (200, no node_errors): our validation must agree (warnings allowed).
_ACCEPTED = ["01_success", "90_colon_ids_and___value__", "93_extra_unknown_input", "94_coercion", "03_output_kinds"]


def _transcript(transcripts_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((transcripts_dir / f"{name}.json").read_text())
    return data.get("post_prompt", data)


@pytest.fixture(scope="module")
def real_catalogue(object_info_path: Path) -> Catalogue:
    return Catalogue(json.loads(object_info_path.read_text()))


def _strip_traceback(body: dict[str, Any]) -> dict[str, Any]:
    # A Python traceback of the server cannot be reproduced; everything else must match.
    for entry in body.get("node_errors", {}).values():
        for error in entry["errors"]:
            if "traceback" in error["extra_info"]:
                error["extra_info"]["traceback"] = []
    return body


@pytest.mark.parametrize("name", _REJECTED)
def test_body_matches_the_real_comfyui_400(transcripts_dir: Path, real_catalogue: Catalogue, name: str) -> None:
    recorded = _transcript(transcripts_dir, name)
    assert recorded["status"] == 400
    # LoadImage's file check needs the upload combo checked (the catalogue lists the input folder).
    report = validate(recorded["request_json"]["prompt"], real_catalogue, check_upload_combos=True)
    assert not report.valid
    assert report.comfyui_body() == _strip_traceback(recorded["json"])


@pytest.mark.parametrize("name", _ACCEPTED)
def test_graphs_the_real_comfyui_accepted_are_valid(
    transcripts_dir: Path, real_catalogue: Catalogue, name: str
) -> None:
    recorded = _transcript(transcripts_dir, name)
    assert recorded["status"] == 200 and not recorded["json"]["node_errors"]
    report = validate(recorded["request_json"]["prompt"], real_catalogue)
    assert report.valid, [str(i) for i in report.issues]


def test_partially_valid_prompt_reports_the_bad_output_only(transcripts_dir: Path, real_catalogue: Catalogue) -> None:
    recorded = _transcript(transcripts_dir, "18_validation_partial_ok")  # ComfyUI ran outputs 2 and 3, rejected 5
    report = validate(recorded["request_json"]["prompt"], real_catalogue)
    assert [(i.node_id, i.type) for i in report.errors] == [("4", "invalid_input_type")]
    assert report.comfyui_body()["node_errors"] == recorded["json"]["node_errors"]


def test_unknown_input_is_a_warning_as_comfyui_ignores_it(transcripts_dir: Path, real_catalogue: Catalogue) -> None:
    report = validate(_transcript(transcripts_dir, "93_extra_unknown_input")["request_json"]["prompt"], real_catalogue)
    assert report.valid
    assert [(i.type, i.node_id, i.input, i.severity) for i in report.warnings] == [
        ("unknown_input", "1", "bogus", "warning")
    ]


# -- unit rules on the hand-made catalogue ----------------------------------------------------------------------------


def _graph(**nodes: dict[str, Any]) -> dict[str, Any]:
    return {key.lstrip("n"): value for key, value in nodes.items()}


def _node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def _types(report: ValidationReport) -> list[tuple[str | None, str, str | None]]:
    return [(i.node_id, i.type, i.input) for i in report.errors]


def _base(**extra: dict[str, Any]) -> dict[str, Any]:
    graph = {
        "1": _node("EmptyImage", width=64, height=64, batch_size=1, color=0),
        "2": _node("SaveImage", images=["1", 0], filename_prefix="x"),
    }
    graph.update(extra)
    return graph


def test_a_good_graph_is_valid_with_no_issues() -> None:
    report = validate(_base(), CAT)
    assert report.valid and report.issues == ()
    assert report.output_nodes == ("2",) and report.dependents["1"] == ("2",)


def test_required_missing_and_unknown_class() -> None:
    graph = _base()
    del graph["1"]["inputs"]["height"]
    assert _types(validate(graph, CAT)) == [("1", "required_input_missing", "height")]
    report = validate(_base(**{"3": _node("NoSuchNode")}), CAT)
    assert report.comfyui_body() == {
        "error": {
            "type": "invalid_prompt",
            "message": "Cannot execute because node NoSuchNode does not exist.",
            "details": "Node ID '#3'",
            "extra_info": {},
        },
        "node_errors": {},
    }


def test_no_output_node() -> None:
    report = validate({"1": _node("EmptyImage", width=64, height=64, batch_size=1, color=0)}, CAT)
    assert [i.type for i in report.errors] == ["prompt_no_outputs"]


def test_link_to_a_missing_node_and_an_output_out_of_range() -> None:
    report = validate(
        _base(**{"3": _node("PreviewImage", images=["9", 0]), "4": _node("PreviewImage", images=["1", 3])}), CAT
    )
    issues = {i.node_id: i for i in report.errors}
    assert issues["3"].type == "exception_during_validation" and issues["3"].details == "'9'"
    assert issues["3"].extra_info["exception_type"] == "KeyError"
    assert (
        issues["4"].type == "exception_during_validation" and issues["4"].extra_info["exception_type"] == "IndexError"
    )
    assert "has 1 output(s)" in issues["4"].hints["reason"]


def test_bad_linked_input_shape() -> None:
    report = validate(_base(**{"3": _node("PreviewImage", images=["1", 0, 1])}), CAT)
    assert _types(report) == [("3", "bad_linked_input", "images")]


def test_link_types_with_wildcards_and_comma_lists() -> None:
    graph = _base(
        **{
            "3": _node("LoadImage", image="a.png"),
            "4": _node("ImageOrMask", pixels=["3", 1]),  # MASK into IMAGE,MASK: shares a type
            "5": _node("PreviewAny", source=["3", 1]),  # anything into *
            "6": _node("PreviewImage", images=["4", 0]),
            "7": _node("PreviewImage", images=["3", 1]),  # MASK into IMAGE: mismatch
        }
    )
    report = validate(graph, CAT)
    assert _types(report) == [("7", "return_type_mismatch", "images")]
    assert report.errors[0].extra_info["received_type"] == "MASK"
    assert report.errors[0].details == "images, received_type(MASK) mismatch input_type(IMAGE)"


def test_numbers_are_coerced_then_bounded() -> None:
    graph = _base()
    graph["1"]["inputs"].update(width="16", height=16.7, batch_size=0, color=99999999)
    report = validate(graph, CAT)
    assert _types(report) == [
        ("1", "value_smaller_than_min", "batch_size"),
        ("1", "value_bigger_than_max", "color"),
    ]
    assert report.errors[1].message == "Value 99999999 bigger than max of 16777215"
    graph["1"]["inputs"].update(batch_size=1, color=0, width="wide")
    (issue,) = validate(graph, CAT).errors
    assert issue.type == "invalid_input_type" and issue.details.startswith("width, wide, invalid literal")


def test_int_step_is_a_warning_only() -> None:
    graph = _base(
        **{
            "3": _node("EmptyLatentImage", width=1001, height=1024, batch_size=1),
            "4": _node("PreviewAny", source=["3", 0]),
        }
    )
    report = validate(graph, CAT)
    assert report.valid
    assert [(i.type, i.input) for i in report.warnings] == [("value_not_multiple_of_step", "width")]
    graph["3"]["inputs"]["width"] = 1000
    assert validate(graph, CAT).issues == ()


def test_nodes_feeding_no_output_are_not_checked_but_noted() -> None:
    graph = _base(**{"3": _node("EmptyLatentImage", width="bad")})
    report = validate(graph, CAT)
    assert report.valid and [(i.node_id, i.type) for i in report.warnings] == [("3", "node_not_executed")]


def test_combos_in_both_formats_and_multiselect() -> None:
    sampler = _node(
        "KSampler",
        model=["9", 0],
        seed=1,
        steps=20,
        cfg=8.0,
        sampler_name="nope",
        scheduler="bogus",
        positive=["9", 0],
        negative=["9", 0],
        latent_image=["9", 0],
        denoise=1.0,
    )
    graph = {
        "9": _node("CheckpointLoaderSimple", ckpt_name="a.safetensors"),
        "3": sampler,
        "4": _node("TagPicker", tags={"__value__": ["x", "q"]}),
        "5": _node("PreviewAny", source=["4", 0]),
        "6": _node("PreviewAny", source=["3", 0]),
    }
    report = validate(graph, CAT)
    combos = [(i.node_id, i.input, i.hints["allowed_values"]) for i in report.errors if i.type == "value_not_in_list"]
    assert combos == [
        ("3", "sampler_name", ["euler", "dpmpp_2m"]),
        ("3", "scheduler", ["normal", "karras"]),
        ("4", "tags", ["x", "y", "z"]),
    ]
    assert report.errors[0].details == "sampler_name: 'nope' not in ['euler', 'dpmpp_2m']"


def test_upload_combos_are_left_to_the_node_unless_asked() -> None:
    graph = _base(**{"3": _node("LoadImage", image="staged/later.png"), "4": _node("PreviewImage", images=["3", 0])})
    assert validate(graph, CAT).valid
    (issue,) = validate(graph, CAT, check_upload_combos=True).errors
    assert (issue.type, issue.details) == ("custom_validation_failed", "image - Invalid image file: staged/later.png")


def test_cycles_are_reported() -> None:
    graph = _base(
        **{
            "3": _node("ImageBlend", image1=["4", 0], image2=["1", 0], blend_factor=0.5),
            "4": _node("ImageInvert", image=["3", 0]),
            "5": _node("PreviewImage", images=["4", 0]),
        }
    )
    report = validate(graph, CAT)
    cycle = [i for i in report.errors if i.type == "dependency_cycle"]
    assert len(cycle) == 1 and set(cycle[0].extra_info["cycle"]) == {"3", "4"}
    assert report.comfyui_body()["error"]["type"] == "dependency_cycle"


def test_body_lists_dependent_outputs_and_output_details() -> None:
    graph = _base(**{"3": _node("PreviewImage", images=["1", 0])})
    graph["1"]["inputs"]["width"] = 0
    body = validate(graph, CAT).comfyui_body()
    assert body["node_errors"]["1"]["dependent_outputs"] == ["2", "3"]
    assert body["error"]["details"] == ""  # the failing node is upstream, not an output node (as in ComfyUI)
    graph["2"]["inputs"]["images"] = ["1"]
    body = validate(graph, CAT).comfyui_body()
    assert body["node_errors"]["1"]["dependent_outputs"] == ["3"]
    assert body["error"]["details"] == "Bad linked input, must be a length-2 list of [node_id, slot_index]: images"
    assert body["node_errors"]["2"]["class_type"] == "SaveImage"


def test_not_an_object_is_an_invalid_prompt() -> None:
    report = validate(["not", "a", "graph"], CAT)
    assert [i.type for i in report.errors] == ["invalid_prompt"]
    assert validate({"1": {"inputs": {}}}, CAT).errors[0].message.endswith("missing the class_type property.")


def test_issue_as_dict_and_str() -> None:
    graph = _base()
    graph["1"]["inputs"]["width"] = 0
    (issue,) = validate(graph, CAT).errors
    assert issue.as_dict()["extra_info"]["input_config"] == ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}]
    assert (
        str(issue)
        == "error: node 1 (EmptyImage) input 'width': value_smaller_than_min: Value 0 smaller than min of 1: width"
    )
