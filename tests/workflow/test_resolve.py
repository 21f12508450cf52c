"""The one path from a job's params to its graph: the same answer for the worker, dispatch and the CLI."""

from __future__ import annotations

import random

import pytest

from handlers.workflow import BindingError, load_template, resolve_graph, resolve_template
from tests.conftest import REPO

LIBRARY = REPO / "workflows"


def _savers(graph: dict[str, dict[str, object]]) -> list[str]:
    return sorted(node_id for node_id, node in graph.items() if node["class_type"] == "SaveImage")


def test_a_template_with_a_seed_batch_becomes_one_graph_with_a_saver_per_seed() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    bound = resolve_template(template, {"prompt": "a fox", "seeds": [1, 2]}, {}, rng=random.Random(0))
    assert len(_savers(bound.graph)) == 2
    assert sorted(seed.value for seed in bound.seeds) == [1, 2]


def test_edits_are_not_mistaken_for_unknown_parameters_but_typos_are() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    bound = resolve_template(template, {"prompt": "a fox", "aspect_ratio": "16:9"}, {}, rng=random.Random(0))
    latent = next(n for n in bound.graph.values() if n["class_type"] == "EmptyLatentImage")
    assert latent["inputs"]["width"] > latent["inputs"]["height"]
    with pytest.raises(BindingError) as caught:
        resolve_template(template, {"prompt": "a fox", "aspect_ratoi": "16:9"}, {})
    assert [p.path for p in caught.value.problems] == ["input.params.aspect_ratoi"]


def test_an_inline_graph_takes_the_same_edits() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    graph = resolve_template(template, {"prompt": "a fox", "seed": 5}, {}).graph
    bound = resolve_graph(graph, {"count": 3}, {"KSampler.steps": 4}, rng=random.Random(0))
    assert len(_savers(bound.graph)) == 3
    assert {n["inputs"]["steps"] for n in bound.graph.values() if n["class_type"] == "KSampler"} == {4}
