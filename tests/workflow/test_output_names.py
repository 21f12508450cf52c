"""Batches of prompts x seeds, and ``output.name`` checked against the bound workflow."""

from __future__ import annotations

import random

import pytest

from handlers.contract import NamePattern, Variation
from handlers.workflow import (
    BindingError,
    OutputNamer,
    load_template,
    output_name_problems,
    output_namer,
    resolve_graph,
    resolve_template,
)
from tests.conftest import REPO

LIBRARY = REPO / "workflows"


def _savers(graph: dict[str, dict[str, object]]) -> list[str]:
    return sorted(node_id for node_id, node in graph.items() if node["class_type"] == "SaveImage")


def test_prompts_times_seeds_is_one_graph_with_a_labelled_saver_per_variation() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    bound = resolve_template(template, {"prompts": ["a fox", "a cat"], "seeds": [1, 2]}, {}, rng=random.Random(0))
    savers = _savers(bound.graph)
    assert len(savers) == 4
    labels = sorted((bound.variation(s) for s in savers), key=lambda v: v.index if v else -1)
    assert labels == [
        Variation(index=0, prompt="a fox", seed=1),
        Variation(index=1, prompt="a fox", seed=2),
        Variation(index=2, prompt="a cat", seed=1),
        Variation(index=3, prompt="a cat", seed=2),
    ]
    encoders = [n for n in bound.graph.values() if n["class_type"] == "CLIPTextEncode"]
    texts = sorted(str(n["inputs"]["text"]) for n in encoders)
    # One positive encoder per prompt, the negative shared; the checkpoint loaded once.
    assert texts.count("blurry, low quality, watermark") == 1
    assert sum(1 for n in bound.graph.values() if n["class_type"] == "CheckpointLoaderSimple") == 1


def test_every_prompt_draws_the_same_random_seed() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    bound = resolve_template(template, {"prompts": ["a fox", "a cat"]}, {}, rng=random.Random(3))
    seeds = {v.seed for v in bound.variations}
    assert len(bound.variations) == 2 and len(seeds) == 1 and None not in seeds
    assert [v.prompt for v in bound.variations] == ["a fox", "a cat"]


def test_a_plain_job_has_no_variations_and_a_seed_batch_labels_its_seeds() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    plain = resolve_template(template, {"prompt": "a fox"}, {})
    assert plain.variations == () and plain.variation("9") is None
    batch = resolve_template(template, {"prompt": "a fox", "count": 2, "seed": 10}, {})
    assert [(v.prompt, v.seed) for v in batch.variations] == [("a fox", 10), ("a fox", 11)]


def test_prompts_need_a_prompt_parameter_and_stay_within_the_batch_limit() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    graph = resolve_template(template, {"prompt": "fixed", "seed": 1}, {}).graph
    with pytest.raises(BindingError) as caught:
        resolve_graph(graph, {"prompts": ["a", "b"]}, {})
    assert [p.path for p in caught.value.problems] == ["input.params.prompts"]
    assert "'prompt' parameter" in caught.value.problems[0].message
    with pytest.raises(BindingError) as caught:
        resolve_template(template, {"prompts": ["a"] * 5, "seeds": [1, 2, 3, 4]}, {})
    assert "over 16 variations" in caught.value.problems[0].message
    with pytest.raises(BindingError) as caught:
        resolve_template(template, {"prompt": "a", "prompts": ["b"]}, {})
    assert "not both" in caught.value.problems[0].message


def test_an_inline_graph_with_a_prompt_placeholder_takes_prompts() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    graph = resolve_template(template, {"prompt": "{{prompt}}", "seed": 1}, {}).graph
    bound = resolve_graph(graph, {"prompts": ["a", "b"]}, {})
    assert [v.prompt for v in bound.variations] == ["a", "b"] and len(_savers(bound.graph)) == 2


def test_unknown_and_unusable_fields_are_reported() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    bound = resolve_template(template, {"prompt": "a fox", "seed": 3}, {})
    problems = output_name_problems(
        NamePattern.parse("{project}/{width}/{nope}"), bound, labels={"project": "p"}, output_nodes=["9"]
    )
    assert [p.path for p in problems] == ["input.output.name"]
    assert "{nope}" in problems[0].message and "project" in problems[0].message


def test_collisions_known_before_running_are_refused() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    batch = resolve_template(template, {"prompt": "a fox", "seeds": [1, 2]}, {})
    savers = _savers(batch.graph)
    same = output_name_problems(NamePattern.parse("out/{prompt}"), batch, labels={}, output_nodes=savers)
    assert len(same) == 1 and "add {node}" in same[0].message
    assert output_name_problems(NamePattern.parse("out/{seed}"), batch, labels={}, output_nodes=savers) == []
    big = resolve_template(template, {"prompt": "a fox", "batch_size": 2}, {})
    problems = output_name_problems(NamePattern.parse("out/{node}"), big, labels={}, output_nodes=["9"])
    assert [p.message for p in problems] == ["names a batch of images alike: add {index}"]
    # Previews are not returned (unless include_temp), so they cannot collide.
    graph = {"9": {"class_type": "SaveImage"}, "10": {"class_type": "PreviewImage"}}
    plain = resolve_template(template, {"prompt": "a fox"}, {})
    plain = type(plain)(graph={**plain.graph, "10": {**graph["10"], "inputs": {}}}, params=plain.params)
    pattern = NamePattern.parse("x")
    assert output_name_problems(pattern, plain, labels={}, output_nodes=["9", "10"]) == []
    assert output_name_problems(pattern, plain, labels={}, output_nodes=["9", "10"], include_temp=True) != []


def test_the_namer_fills_labels_params_variations_and_builtins() -> None:
    template = load_template(LIBRARY, "image/sdxl-basic")
    batch = resolve_template(template, {"prompts": ["A fox!", "a cat"], "seed": 9}, {}, rng=random.Random(0))
    namer = output_namer(
        "p/{project}/{width}/{variation}-{prompt}-{seed}/{node}_{index}",
        batch,
        job_id="j-1",
        labels={"project": "p1", "width": "wide"},
        output_nodes=_savers(batch.graph),
    )
    assert isinstance(namer, OutputNamer)
    second = next(s for s in _savers(batch.graph) if batch.variation(s) and batch.variation(s).index == 1)  # type: ignore[union-attr]
    assert namer.key("9", 0, "png") == "p/p1/wide/0-A-fox-9/9_0.png"  # labels win over parameters
    assert namer.key(second, 1, "webp") == f"p/p1/wide/1-a-cat-9/{second.replace(':', '-')}_1.webp"
    assert output_namer(None, batch, job_id="j", labels={}, output_nodes=[]) is None
    with pytest.raises(BindingError):
        output_namer("{x}", batch, job_id="j", labels={}, output_nodes=["9"])
