"""Seed variants merged into one API graph: variant 1 keeps its ids, identical nodes are shared, the seed-dependent
part is duplicated under ``"<n>:<id>"`` ids with unique titles; seeds and media bindings follow the new ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.contract import SeedUsed
from handlers.workflow import (
    BoundWorkflow,
    Catalogue,
    MediaBinding,
    ParamType,
    apply_edits,
    bind_template,
    load_template,
    merge_variants,
    seed_variants,
    split_edit_params,
    validate,
)
from handlers.workflow._node_refs import is_link
from tests.conftest import REPO

LIBRARY = REPO / "workflows"
#: The /object_info snapshot dispatch bundles: ComfyUI's core classes.
CATALOGUE = REPO / "handlers" / "dispatch" / "catalogue.json"


def _sdxl_variants(params: dict[str, Any], media: list[str] | None = None) -> tuple[list[BoundWorkflow], Any]:
    template = load_template(LIBRARY, "image/sdxl-basic")
    edits, rest = split_edit_params(params, template.params())
    bound = bind_template(template, rest, media_names=media)
    return apply_edits(bound, edits, profile=template.profile, media_names=media), template


def _links(graph: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (node_id, name, value[0])
        for node_id, node in graph.items()
        for name, value in node["inputs"].items()
        if is_link(value)
    ]


def _outputs(graph: dict[str, Any]) -> list[str]:
    return [node_id for node_id, node in graph.items() if node["class_type"] == "SaveImage"]


def test_a_seed_batch_shares_loaders_and_encoders() -> None:
    variants, _ = _sdxl_variants({"prompt": "a cat", "seeds": [1, 2, 3]})
    merged = merge_variants(variants)
    graph = merged.graph
    # Loader, both encoders and the latent run once; sampler, decode and save once per seed.
    assert sorted(graph) == sorted(["3", "4", "5", "6", "7", "8", "9", "2:3", "2:8", "2:9", "3:3", "3:8", "3:9"])
    assert [graph[n]["inputs"]["seed"] for n in ("3", "2:3", "3:3")] == [1, 2, 3]
    assert graph["2:3"]["inputs"]["model"] == ["4", 0] and graph["2:3"]["inputs"]["positive"] == ["6", 0]
    assert graph["2:8"]["inputs"]["samples"] == ["2:3", 0] and graph["3:9"]["inputs"]["images"] == ["3:8", 0]
    titles = [node["_meta"]["title"] for node in graph.values()]
    assert len(titles) == len(set(titles)) and graph["2:9"]["_meta"]["title"] == "Save Image #2"
    assert [(s.node_id, s.value) for s in merged.seeds] == [("3", 1), ("2:3", 2), ("3:3", 3)]
    # The variants themselves are untouched.
    assert set(variants[1].graph) == set(variants[0].graph)


def test_the_merged_batch_validates_against_the_catalogue() -> None:
    catalogue = Catalogue(json.loads(CATALOGUE.read_text()))
    variants, _ = _sdxl_variants({"prompt": "a cat", "count": 2, "seed": 7, "aspect_ratio": "16:9"})
    merged = merge_variants(variants)
    report = validate(merged.graph, catalogue)
    # The snapshot lists no model files: the checkpoint combo is the one thing it cannot accept.
    assert [(i.node_id, i.input) for i in report.errors] == [("4", "ckpt_name")], report.errors
    assert sorted(report.output_nodes) == ["2:9", "9"]
    assert [s.value for s in merged.seeds] == [7, 8]


def test_merging_one_variant_is_the_identity() -> None:
    variants, _ = _sdxl_variants({"prompt": "a cat", "seed": 5})
    assert len(variants) == 1
    assert merge_variants(variants) == variants[0]
    with pytest.raises(ValueError, match="at least one"):
        merge_variants([])


def test_media_bindings_follow_the_new_ids_and_with_staged_works() -> None:
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "face"}, "_meta": {"title": "Face"}},
        "2": {"class_type": "Noise", "inputs": {"seed": 1, "image": ["1", 0]}},
        "3": {"class_type": "Mix", "inputs": {"a": ["2", 0], "mask": ["4", 0]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "mask"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}, "_meta": {"title": "Out"}},
    }
    face = MediaBinding("face", ParamType.IMAGE, "face", True, (("1", "image"),))
    # A binding whose loader is seed-dependent in variant 2 would move; here a loader fed by the seed: node "6".
    graph["6"] = {"class_type": "LoadImageMask", "inputs": {"image": "m2", "seed": 1}}
    mask = MediaBinding("mask", ParamType.IMAGE, "m2", True, (("6", "image"),))
    variants = [
        BoundWorkflow(
            graph=g,
            seeds=[SeedUsed(node_id="2", input="seed", value=s), SeedUsed(node_id="6", input="seed", value=s)],
            media=[face, mask],
            warnings=["w1", f"w{s}"],
        )
        for g, s in zip(seed_variants(graph, [1, 2]), [1, 2], strict=True)
    ]
    merged = merge_variants(variants)
    assert set(merged.graph) == {"1", "2", "3", "4", "5", "6", "2:2", "2:3", "2:5", "2:6"}
    assert merged.media == [
        MediaBinding("face", ParamType.IMAGE, "face", True, (("1", "image"),)),
        MediaBinding("mask", ParamType.IMAGE, "m2", True, (("6", "image"), ("2:6", "image"))),
    ]
    staged = merged.with_staged({"face": "job/face.png", "m2": "job/m2.png"})
    assert staged["1"]["inputs"]["image"] == "job/face.png"
    assert staged["6"]["inputs"]["image"] == staged["2:6"]["inputs"]["image"] == "job/m2.png"
    assert staged["2:3"]["inputs"] == {"a": ["2:2", 0], "mask": ["4", 0]}
    assert merged.warnings == ["w1", "w2"]
    assert [(s.node_id, s.value) for s in merged.seeds] == [("2", 1), ("6", 1), ("2:2", 2), ("2:6", 2)]


def test_reference_edits_survive_the_merge() -> None:
    variants, _ = _sdxl_variants({"prompt": "a cat", "seeds": [1, 2], "references": ["face"]}, media=["face"])
    merged = merge_variants(variants)
    loaders = [n for n, node in merged.graph.items() if node["class_type"] == "LoadImage"]
    assert len(loaders) == 1 and ":" not in loaders[0]  # the reference loader runs once
    staged = merged.with_staged({"face": "job-1/face.png"})
    assert staged[loaders[0]]["inputs"]["image"] == "job-1/face.png"


def test_an_id_that_already_looks_like_a_copy_is_not_overwritten() -> None:
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 1}},
        "2:3": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
    }
    variants = [BoundWorkflow(graph=g) for g in seed_variants(graph, [1, 2])]
    merged = merge_variants(variants).graph
    assert len(merged) == 4 and merged["2:3"] == graph["2:3"]
    copies = [n for n in merged if n not in graph]
    assert all(link[2] in merged for link in _links(merged))
    assert sorted(merged[n]["class_type"] for n in copies) == ["KSampler", "SaveImage"]


# ---------------------------------------------------------------------------------------------------- properties


@st.composite
def _graphs(draw: st.DrawFn) -> dict[str, Any]:
    """A random DAG: each node has a unique label, maybe a seed, and links to earlier nodes; some save."""
    size = draw(st.integers(min_value=1, max_value=12))
    graph: dict[str, Any] = {}
    for i in range(1, size + 1):
        inputs: dict[str, Any] = {"label": f"n{i}"}
        if draw(st.booleans()) and i > 1:
            for slot in range(draw(st.integers(min_value=1, max_value=2))):
                inputs[f"in{slot}"] = [str(draw(st.integers(min_value=1, max_value=i - 1))), 0]
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            inputs["seed"] = 0
        kind = "SaveImage" if draw(st.integers(min_value=0, max_value=3)) == 0 else "Work"
        graph[str(i)] = {"class_type": kind, "inputs": inputs, "_meta": {"title": f"node {i}"}}
    if not any("seed" in node["inputs"] for node in graph.values()):
        graph["1"]["inputs"]["seed"] = 0
    return graph


def _seed_dependent(graph: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for node_id, node in graph.items():  # ids are in topological order by construction
        links = [v[0] for v in node["inputs"].values() if is_link(v)]
        if "seed" in node["inputs"] or any(source in found for source in links):
            found.add(node_id)
    return found


@settings(max_examples=150, deadline=None)
@given(graph=_graphs(), seeds=st.lists(st.integers(min_value=1, max_value=2**32), min_size=1, max_size=5, unique=True))
def test_merge_properties(graph: dict[str, Any], seeds: list[int]) -> None:
    variants = [BoundWorkflow(graph=g) for g in seed_variants(graph, seeds)]
    merged = merge_variants(variants).graph
    dependent = _seed_dependent(graph)
    extra = len(seeds) - 1
    # Minimal: only the seed-dependent nodes are copied, once per further variant.
    assert len(merged) == len(graph) + extra * len(dependent)
    # Output nodes: variant 1's, plus each further variant's that are not shared.
    saves = set(_outputs(graph))
    assert len(_outputs(merged)) == len(saves) + extra * len(saves & dependent)
    # Variant 1 is unchanged; every link points at a node of the merged graph; titles are unique.
    assert all(merged[n] == variants[0].graph[n] for n in graph)
    assert all(source in merged for _, _, source in _links(merged))
    titles = [node["_meta"]["title"] for node in merged.values()]
    assert len(titles) == len(set(titles))
    # Each variant's seed appears exactly on its own copies of the seed inputs.
    seed_inputs = sorted(node["inputs"]["seed"] for node in merged.values() if "seed" in node["inputs"])
    per_variant = sum(1 for n in graph if "seed" in graph[n]["inputs"])
    assert seed_inputs == sorted(s for s in seeds for _ in range(per_variant))


def test_a_long_chain_with_a_seed_batch_is_merged_without_recursion() -> None:
    """1,200 nodes in one chain (deeper than Python's recursion limit) folded into a seed batch: handled
    iteratively, not an ``internal`` RecursionError (issue 11, item 8)."""
    from handlers.workflow import resolve_graph

    graph: dict[str, Any] = {"0": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}
    for i in range(1, 1200):
        graph[str(i)] = {"class_type": "ImageInvert", "inputs": {"image": [str(i - 1), 0]}}
    graph["1200"] = {"class_type": "KSampler", "inputs": {"seed": 1, "latent_image": ["1199", 0]}}
    graph["1201"] = {"class_type": "SaveImage", "inputs": {"images": ["1200", 0], "filename_prefix": "x"}}
    graph = dict(reversed(graph.items()))  # consumers first: a recursive walk would go 1,200 frames deep
    bound = resolve_graph(graph, {"seeds": [1, 2]}, {})
    # The chain is shared by both seeds; only the seed-dependent sampler and its save node are duplicated.
    assert len(bound.graph) == len(graph) + 2
    assert sorted(s.value for s in bound.seeds) == [1, 2]
