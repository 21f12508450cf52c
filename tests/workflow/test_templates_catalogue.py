"""The example templates in workflows/ are graphs a real ComfyUI (0.3.64's node catalogue) would accept."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from handlers.workflow import bind_template, list_templates, load_template
from tests.conftest import REPO

EXAMPLES = REPO / "workflows"
SAMPLE_PARAMS: dict[str, Any] = {
    "prompt": "a lighthouse",
    "image": "example.png",
    "width": 64,
    "height": 64,
    "color": 0,
}

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def object_info(shared_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir / "comfyui" / "object_info.json").read_text())
    return data


def _problems(graph: dict[str, Any], object_info: dict[str, Any]) -> list[str]:
    problems = []
    for node_id, node in graph.items():
        info = object_info.get(node["class_type"])
        if not info:
            problems.append(f"{node_id}: unknown class {node['class_type']}")
            continue
        spec = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for name in info["input"].get("required", {}):
            if name not in node["inputs"]:
                problems.append(f"{node_id}: missing required input {name}")
        for name, value in node["inputs"].items():
            if name not in spec:
                problems.append(f"{node_id}: unknown input {name}")
                continue
            kind, config = spec[name][0], (spec[name][1] if len(spec[name]) > 1 else {})
            if isinstance(value, list):
                source = graph.get(value[0])
                if source is None:
                    problems.append(f"{node_id}.{name}: link to missing node {value[0]}")
                    continue
                produced = object_info[source["class_type"]]["output"][value[1]]
                if produced != kind:
                    problems.append(f"{node_id}.{name}: link gives {produced}, input takes {kind}")
            elif kind in ("INT", "FLOAT"):
                if not (config.get("min", float("-inf")) <= value <= config.get("max", float("inf"))):
                    problems.append(f"{node_id}.{name}: {value} out of range")
            elif isinstance(kind, list) and kind and value not in kind:
                problems.append(f"{node_id}.{name}: {value!r} not in combo")
    return problems


@pytest.mark.parametrize(("character", "name"), list_templates(EXAMPLES))
def test_bound_example_is_valid_for_comfyui(character: str | None, name: str, object_info: dict[str, Any]) -> None:
    template = load_template(EXAMPLES, name, character=character)
    params = {k: v for k, v in SAMPLE_PARAMS.items() if k in template.params()}
    bound = bind_template(template, params, rng=random.Random(0))
    assert _problems(bound.graph, object_info) == []
    outputs = [n for n in bound.graph.values() if object_info[n["class_type"]].get("output_node")]
    assert outputs, "a prompt without output nodes is refused by ComfyUI (prompt_no_outputs)"


def test_the_checker_itself_finds_problems(object_info: dict[str, Any]) -> None:
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "colour": 1}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "NoSuchNode", "inputs": {}},
    }
    assert _problems(graph, object_info) == [
        "1: missing required input color",
        "1.width: 0 out of range",
        "1: unknown input colour",
        "2.images: link gives LATENT, input takes IMAGE",
        "4: unknown class NoSuchNode",
    ]
