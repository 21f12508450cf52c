"""Graph edits on real graphs from the library: LoRA chains, sizes, identity references, seed batches. Each edited
graph is checked against ComfyUI 0.3.64's /object_info (plus the recorded custom nodes) where the shared data is
present."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from handlers.workflow import (
    Catalogue,
    EditError,
    IdentityMethod,
    LoraChoice,
    add_loras,
    attach_references,
    load_template,
    seed_variants,
    set_aspect_ratio,
    set_batch_size,
    set_size,
    validate,
    with_custom_nodes,
)
from handlers.workflow._graph_ops import consumers, fresh_ids
from tests.conftest import REPO

LIBRARY = REPO / "workflows"


def graph_of(name: str, character: str | None = None) -> dict[str, Any]:
    return copy.deepcopy(dict(load_template(LIBRARY, name, character=character).graph))


@pytest.fixture(scope="module")
def catalogue(object_info_path: Path) -> Catalogue:
    object_info = json.loads(object_info_path.read_text())
    return Catalogue(with_custom_nodes(object_info, LIBRARY))


def assert_valid(graph: dict[str, Any], catalogue: Catalogue) -> None:
    """Valid but for model files (the catalogue has none) and media names (staged later)."""
    report = validate(graph, catalogue)
    problems = [str(i) for i in report.issues if i.type != "value_not_in_list"]
    assert problems == []
    for issue in report.issues:
        assert issue.input in {
            "ckpt_name",
            "lora_name",
            "unet_name",
            "clip_name",
            "clip_name1",
            "clip_name2",
            "vae_name",
            "pulid_file",
        }, str(issue)


def by_class(graph: dict[str, Any], class_type: str) -> list[str]:
    return [node_id for node_id, node in graph.items() if node["class_type"] == class_type]


# -- LoRA chains ----------------------------------------------------------------------------------------------------


def test_lora_chain_on_a_checkpoint_patches_model_and_clip(catalogue: Catalogue) -> None:
    graph = graph_of("image/sdxl-basic")
    before = copy.deepcopy(graph)
    edited = add_loras(graph, [LoraChoice("detail.safetensors", 0.8), LoraChoice("style.safetensors", 0.5, 0.3)])
    assert graph == before, "the input graph is never modified"
    first, second = by_class(edited, "LoraLoader")
    assert edited[first]["inputs"] == {
        "model": ["4", 0],
        "clip": ["4", 1],
        "lora_name": "detail.safetensors",
        "strength_model": 0.8,
        "strength_clip": 0.8,
    }
    assert edited[second]["inputs"]["model"] == [first, 0] and edited[second]["inputs"]["clip"] == [first, 1]
    assert edited[second]["inputs"]["strength_clip"] == 0.3
    assert consumers(edited, ("4", 0)) == [(first, "model")]
    assert consumers(edited, ("4", 1)) == [(first, "clip")]
    assert consumers(edited, (second, 1)) == [("6", "clip"), ("7", "clip")]
    assert consumers(edited, (second, 0)) == [("3", "model")]
    assert edited["8"]["inputs"]["vae"] == ["4", 2], "the VAE output is not a LoRA's business"
    assert edited[first]["_meta"]["title"] == "LoRA 1: detail.safetensors"
    assert_valid(edited, catalogue)


def test_lora_after_a_character_lora_keeps_the_chain() -> None:
    graph = graph_of("image/sdxl-basic", character="ava")
    edited = add_loras(graph, [LoraChoice("extra.safetensors")])
    [added] = [n for n in by_class(edited, "LoraLoader") if n != "10"]
    assert edited[added]["inputs"]["model"] == ["4", 0]
    assert edited["10"]["inputs"]["model"] == [added, 0] and edited["10"]["inputs"]["clip"] == [added, 1]


def test_flux_gets_model_only_loras_on_every_model_consumer(catalogue: Catalogue) -> None:
    edited = add_loras(graph_of("image/flux-dev"), [LoraChoice("flux-style.safetensors", 0.9)])
    [lora] = by_class(edited, "LoraLoaderModelOnly")
    assert edited[lora]["inputs"] == {"model": ["1", 0], "lora_name": "flux-style.safetensors", "strength_model": 0.9}
    assert consumers(edited, (lora, 0)) == [("9", "model"), ("10", "model")]  # scheduler and guider
    assert edited["4"]["inputs"]["clip"] == ["2", 0]
    assert_valid(edited, catalogue)


def test_with_clip_uses_the_text_encoder_loader(catalogue: Catalogue) -> None:
    edited = add_loras(graph_of("image/flux-dev"), [LoraChoice("flux-char.safetensors")], with_clip=True)
    [lora] = by_class(edited, "LoraLoader")
    assert edited[lora]["inputs"]["clip"] == ["2", 0] and edited["4"]["inputs"]["clip"] == [lora, 1]
    assert_valid(edited, catalogue)


def test_wan_experts_each_get_a_chain_unless_a_source_is_named(catalogue: Catalogue) -> None:
    graph = graph_of("video/wan22-i2v")
    both = add_loras(graph, [LoraChoice("motion.safetensors")])
    loras = by_class(both, "LoraLoaderModelOnly")
    assert sorted(both[n]["inputs"]["model"][0] for n in loras) == ["1", "2"]
    titles = {both[n]["_meta"]["title"] for n in loras}
    assert titles == {
        "LoRA (Load High Noise Expert): motion.safetensors",
        "LoRA (Load Low Noise Expert): motion.safetensors",
    }
    assert_valid(both, catalogue)
    paired = add_loras(
        graph,
        [
            LoraChoice("lightx2v_high.safetensors", source="Load High Noise Expert"),
            LoraChoice("lightx2v_low.safetensors", source="2"),
        ],
    )
    chains = {
        paired[n]["inputs"]["model"][0]: paired[n]["inputs"]["lora_name"]
        for n in by_class(paired, "LoraLoaderModelOnly")
    }
    assert chains == {"1": "lightx2v_high.safetensors", "2": "lightx2v_low.safetensors"}
    assert_valid(paired, catalogue)


def test_lora_errors_name_the_problem() -> None:
    graph = graph_of("image/sdxl-basic")
    with pytest.raises(EditError, match="no node with id or title 'Nope'") as info:
        add_loras(graph, [LoraChoice("a.safetensors", source="Nope")])
    assert info.value.param == "loras[0].source"
    with pytest.raises(EditError, match="not a model loader"):
        add_loras(graph, [LoraChoice("a.safetensors", source="KSampler")])
    with pytest.raises(EditError, match="no model loader"):
        add_loras(graph_of("image/blur"), [LoraChoice("a.safetensors")])
    with pytest.raises(EditError, match="exactly one text encoder loader"):
        add_loras(
            graph_of("video/wan22-i2v") | {"99": {"class_type": "CLIPLoader", "inputs": {}}},
            [LoraChoice("a")],
            with_clip=True,
        )
    assert add_loras(graph, []) == graph


def test_new_ids_never_collide_even_with_subgraph_ids() -> None:
    graph = {"194:45": {"class_type": "X", "inputs": {}}, "7": {"class_type": "X", "inputs": {}}, "195": {}}
    ids = fresh_ids(graph)
    assert [next(ids), next(ids)] == ["196", "197"]


# -- sizes ----------------------------------------------------------------------------------------------------------


def test_aspect_ratio_keeps_the_pixel_budget_and_the_family_multiple(catalogue: Catalogue) -> None:
    edited, size = set_aspect_ratio(graph_of("image/sdxl-basic"), "16:9")
    assert size == (1344, 768) and edited["5"]["inputs"]["width"] == 1344 and edited["5"]["inputs"]["height"] == 768
    assert_valid(edited, catalogue)
    flux, (width, height) = set_aspect_ratio(graph_of("image/flux-dev"), "9:16", 2.0)
    assert width % 16 == 0 and height % 16 == 0 and height > width
    assert flux["6"]["inputs"]["width"] == width
    assert_valid(flux, catalogue)


def test_video_size_goes_on_wan_image_to_video(catalogue: Catalogue) -> None:
    edited, size = set_aspect_ratio(graph_of("video/wan22-i2v"), "16:9", 0.45)
    assert size == (912, 512)
    assert (edited["10"]["inputs"]["width"], edited["10"]["inputs"]["height"]) == size
    assert_valid(edited, catalogue)


def test_set_size_refuses_links_and_graphs_without_latents() -> None:
    graph = graph_of("image/sdxl-basic")
    graph["5"]["inputs"]["width"] = ["99", 0]
    with pytest.raises(EditError, match="fed by a link"):
        set_size(graph, 512, 512)
    with pytest.raises(EditError, match="no latent node"):
        set_size(graph_of("image/blur"), 512, 512)
    with pytest.raises(EditError, match="has no width and height"):
        set_size(graph_of("image/sdxl-basic"), 512, 512, node="KSampler")


# -- identity references --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(IdentityMethod))
def test_references_go_between_the_model_and_the_sampler(method: IdentityMethod, catalogue: Catalogue) -> None:
    graph = graph_of("image/sdxl-basic", character="ava")
    edited, loaders = attach_references(graph, ["face1.png", "face2.png"], method=method, weight=0.7)
    assert [image for image, _, _ in loaders] == ["face1.png", "face2.png"]
    for image, node_id, input_name in loaders:
        assert edited[node_id]["class_type"] == "LoadImage" and edited[node_id]["inputs"][input_name] == image
    [batch] = by_class(edited, "ImageBatch")
    apply_class = "IPAdapterFaceID" if method is IdentityMethod.FACEID else "ApplyPulid"
    [apply] = by_class(edited, apply_class)
    assert edited[apply]["inputs"]["image"] == [batch, 0] and edited[apply]["inputs"]["weight"] == 0.7
    assert edited["3"]["inputs"]["model"] == [apply, 0]
    # The adapter sits after the character's LoRA: identity applies to the model the sampler would have used.
    upstream = edited[apply]["inputs"]["model"][0]
    if method is IdentityMethod.FACEID:
        assert edited[upstream]["class_type"] == "IPAdapterUnifiedLoaderFaceID"
        upstream = edited[upstream]["inputs"]["model"][0]
    assert upstream == "10"
    assert_valid(edited, catalogue)


def test_every_sampler_taking_the_model_gets_the_identity(catalogue: Catalogue) -> None:
    edited, _ = attach_references(graph_of("image/sdxl-inpaint"), ["face.png"], method="pulid")
    [apply] = by_class(edited, "ApplyPulid")
    assert edited[apply]["inputs"]["model"] == ["13", 0]  # after DifferentialDiffusion
    assert edited["3"]["inputs"]["model"] == [apply, 0]
    assert_valid(edited, catalogue)


def test_identity_needs_an_sdxl_graph_and_images() -> None:
    with pytest.raises(EditError, match=r"needs an SD1\.5/SDXL graph"):
        attach_references(graph_of("image/flux-dev"), ["face.png"])
    with pytest.raises(EditError, match="at least one reference"):
        attach_references(graph_of("image/sdxl-basic"), [])
    with pytest.raises(EditError, match="method must be one of faceid, pulid"):
        attach_references(graph_of("image/sdxl-basic"), ["f.png"], method="reactor")


# -- seeds and batches ----------------------------------------------------------------------------------------------


def test_seed_variants_set_every_sampler_seed() -> None:
    graph = graph_of("video/wan22-i2v")
    variants = seed_variants(graph, [1, 2, 3])
    assert [(v["11"]["inputs"]["noise_seed"], v["12"]["inputs"]["noise_seed"]) for v in variants] == [
        (1, 1),
        (2, 2),
        (3, 3),
    ]
    assert graph["11"]["inputs"]["noise_seed"] == 0
    with pytest.raises(EditError, match="no seed input"):
        seed_variants(graph_of("image/blur"), [1])
    with pytest.raises(EditError, match="from 0 to 2\\^64-1"):
        seed_variants(graph, [-5])


def test_batch_size_where_the_model_allows(catalogue: Catalogue) -> None:
    edited = set_batch_size(graph_of("image/z-image-turbo"), 4)
    assert edited["7"]["inputs"]["batch_size"] == 4
    assert_valid(edited, catalogue)
    with pytest.raises(EditError, match="no image latent node"):
        set_batch_size(graph_of("video/wan22-i2v"), 2)
    with pytest.raises(EditError, match=">= 1"):
        set_batch_size(graph_of("image/z-image-turbo"), 0)


def test_edit_library_and_tts_names_are_exported() -> None:
    from handlers import workflow

    mine = {
        "EDIT_PARAMS",
        "SPEECH_PARAMS",
        "WORKFLOWS_ENV",
        "EditError",
        "GraphEdits",
        "IdentityMethod",
        "LoraChoice",
        "LoraParam",
        "ModelFamily",
        "add_loras",
        "apply_edits",
        "attach_references",
        "caption_with_trigger",
        "chunk_text",
        "custom_node_classes",
        "default_workflows_dir",
        "detect_family",
        "list_characters",
        "parse_aspect_ratio",
        "prepare_speech_params",
        "prepare_tts_text",
        "seed_variants",
        "set_aspect_ratio",
        "set_batch_size",
        "set_size",
        "size_for",
        "size_multiple",
        "split_edit_params",
        "split_sentences",
        "with_custom_nodes",
    }
    assert mine <= set(workflow.__all__)
    assert all(getattr(workflow, name) is not None for name in mine)
