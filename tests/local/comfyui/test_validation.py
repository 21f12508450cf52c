"""``validate_prompt`` without a server: the recorded 400 bodies, coercion, and ComfyUI's quirks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from handlers.local.comfyui import PromptCrash, validate_prompt
from handlers.local.comfyui._node import Folders
from handlers.local.comfyui._nodes import NODE_CLASSES
from tests.local.comfyui._fake_nodes import FAKE_NODES
from tests.local.comfyui._recordings import load, normalise


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
        "18_validation_partial_ok",
        "19_validation_bad_link",
        "20_validation_no_class_type",
        "91_int_link_id",
    ],
)
def test_recorded_validation_results(transcripts_dir: Path, folders: Folders, name: str) -> None:
    post = load(transcripts_dir, name)["post_prompt"]
    prompt = copy.deepcopy(post["request_json"]["prompt"])
    result = validate_prompt(prompt, NODE_CLASSES, folders)
    expected = post["json"]
    if post["status"] == 400:
        assert not result.ok
        assert normalise({"error": result.error, "node_errors": result.node_errors}) == normalise(expected)
    else:
        assert result.ok and result.node_errors == expected["node_errors"]


@pytest.mark.parametrize("name", ["90_colon_ids_and___value__", "93_extra_unknown_input", "94_coercion"])
def test_coerced_prompt_is_what_the_history_shows(transcripts_dir: Path, folders: Folders, name: str) -> None:
    recording = load(transcripts_dir, name)
    prompt = copy.deepcopy(recording["post_prompt"]["request_json"]["prompt"])
    result = validate_prompt(prompt, NODE_CLASSES, folders)
    recorded_id = recording["post_prompt"]["json"]["prompt_id"]
    recorded = recording["history"]["json"][recorded_id]["prompt"]
    assert result.ok
    assert prompt == recorded[2]
    assert sorted(result.outputs) == sorted(recorded[4])


def test_ui_format_workflow_crashes_like_the_real_server(transcripts_dir: Path, folders: Folders) -> None:
    prompt = load(transcripts_dir, "92_ui_format_posted")["post_prompt"]["request_json"]["prompt"]
    with pytest.raises(PromptCrash):
        validate_prompt(prompt, NODE_CLASSES, folders)


def _choose(**inputs: Any) -> dict[str, Any]:
    return {"1": {"class_type": "Choose", "inputs": {"v1": "a", "v3": "x", "long": "item0", "ratio": 0.5, **inputs}}}


def test_combos_v1_v3_and_long_lists(folders: Folders) -> None:
    assert validate_prompt(_choose(), FAKE_NODES, folders).ok
    errors = validate_prompt(_choose(v3="z", long="nope"), FAKE_NODES, folders).node_errors["1"]["errors"]
    by_input = {e["extra_info"]["input_name"]: e for e in errors}
    assert by_input["v3"]["details"] == "v3: 'z' not in ['x', 'y']"
    assert by_input["v3"]["extra_info"]["input_config"] == ["COMBO", {"options": ["x", "y"], "default": "x"}]
    assert by_input["long"]["details"] == "long: 'nope' not in (list of length 25)"
    assert by_input["long"]["extra_info"]["input_config"] is None


def test_value_coercion_and_ranges(folders: Folders) -> None:
    prompt = _choose(ratio="0.25")
    assert validate_prompt(prompt, FAKE_NODES, folders).ok
    assert prompt["1"]["inputs"]["ratio"] == 0.25
    low = validate_prompt(_choose(ratio=-1), FAKE_NODES, folders).node_errors["1"]["errors"][0]
    assert (low["type"], low["message"], low["details"]) == (
        "value_smaller_than_min",
        "Value -1.0 smaller than min of 0.0",
        "ratio",
    )


def test_custom_validation_replaces_the_list_check(folders: Folders) -> None:
    prompt = {"1": {"class_type": "Checked", "inputs": {"name": "also-fine", "count": 3}}}
    assert validate_prompt(prompt, FAKE_NODES, folders).ok
    prompt = {"1": {"class_type": "Checked", "inputs": {"name": "bad", "count": 9}}}
    errors = validate_prompt(prompt, FAKE_NODES, folders).node_errors["1"]["errors"]
    assert [(e["type"], e["details"]) for e in errors] == [
        ("value_bigger_than_max", "count"),
        ("custom_validation_failed", "name - Invalid name: bad"),
    ]


def test_partial_execution_targets_pick_the_outputs(folders: Folders) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 1}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    assert validate_prompt(copy.deepcopy(prompt), FAKE_NODES, folders, ["3"]).outputs == ["3"]
    result = validate_prompt(copy.deepcopy(prompt), FAKE_NODES, folders, ["1"])
    assert not result.ok and result.error is not None and result.error["type"] == "prompt_no_outputs"


def test_upstream_error_is_reported_once_with_every_dependent_output(folders: Folders) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 99}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    result = validate_prompt(prompt, FAKE_NODES, folders)
    assert not result.ok and result.error is not None
    assert result.error["details"] == ""  # the outputs themselves have no errors of their own
    assert list(result.node_errors) == ["1"]
    assert result.node_errors["1"]["dependent_outputs"] == ["2", "3"]


def test_missing_link_source_is_an_exception_during_validation(folders: Folders) -> None:
    prompt = {"2": {"class_type": "Show", "inputs": {"value": ["9", 0]}}}
    error = validate_prompt(prompt, FAKE_NODES, folders).node_errors["2"]["errors"][0]
    assert (error["type"], error["details"], error["extra_info"]["exception_type"]) == (
        "exception_during_validation",
        "'9'",
        "KeyError",
    )


def test_bad_slot_upstream_is_an_inner_exception(folders: Folders) -> None:
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 1}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 5], "b": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }
    result = validate_prompt(prompt, FAKE_NODES, folders)
    error = result.node_errors["2"]["errors"][0]
    assert (error["type"], error["extra_info"]["exception_type"], error["extra_info"]["linked_node"]) == (
        "exception_during_inner_validation",
        "IndexError",
        ["2", 0],
    )


@pytest.mark.parametrize("prompt", [[], "x", {"1": 5}, {"1": {"class_type": ["Show"]}}])
def test_shapes_that_crash_the_real_server(folders: Folders, prompt: Any) -> None:
    with pytest.raises(PromptCrash):
        validate_prompt(prompt, FAKE_NODES, folders)


def test_missing_checkpoint_is_not_in_the_list(folders: Folders) -> None:
    """Model combos list the models folder, so a checkpoint that is not there fails as on the real server."""
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "absent.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 1,
                "steps": 2,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["6", 0],
                "latent_image": ["5", 0],
            },
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}},
    }
    result = validate_prompt(prompt, NODE_CLASSES, folders)
    error = result.node_errors["4"]["errors"][0]
    assert (error["type"], error["details"]) == ("value_not_in_list", "ckpt_name: 'absent.safetensors' not in []")
    (folders.models / "checkpoints").mkdir()
    (folders.models / "checkpoints" / "absent.safetensors").write_bytes(b"")
    assert validate_prompt(prompt, NODE_CLASSES, folders).ok
