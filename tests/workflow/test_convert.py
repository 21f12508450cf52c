"""UI -> API conversion on small hand-made workflows: one test per rule of the frontend's graphToPrompt."""

from __future__ import annotations

import contextlib
import copy
import random
from typing import Any

import pytest

from handlers.workflow import Catalogue, ConversionError, ui_to_api
from handlers.workflow._dynamic_prompt import resolve_dynamic_prompt
from tests.workflow.test_catalogue import CATALOGUE

CAT = Catalogue(CATALOGUE)


def sock(name: str, type_: str) -> dict[str, Any]:
    return {"name": name, "type": type_, "link": None}


def wid(name: str, type_: str) -> dict[str, Any]:
    """A widget's input socket (frontend >= 1.16 saves one for linked widgets)."""
    return {"name": name, "type": type_, "widget": {"name": name}, "link": None}


class UI:
    """Builds a UI workflow the way the frontend saves it (schema 0.4, array links)."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.links: list[list[Any]] = []

    def node(
        self,
        node_id: int,
        type_: str,
        widgets: list[Any] | None = None,
        *,
        inputs: list[dict[str, Any]] | None = None,
        outputs: list[str] | None = None,
        mode: int = 0,
        title: str | None = None,
    ) -> dict[str, Any]:
        node: dict[str, Any] = {
            "id": node_id,
            "type": type_,
            "mode": mode,
            "inputs": copy.deepcopy(inputs or []),
            "outputs": [{"name": t, "type": t, "links": []} for t in outputs or []],
            "properties": {},
            "widgets_values": widgets if widgets is not None else [],
        }
        if title is not None:
            node["title"] = title
        self.nodes.append(node)
        return node

    def link(self, origin: int, origin_slot: int, target: int, input_name: str) -> int:
        link_id = len(self.links) + 1
        source = next(n for n in self.nodes if n["id"] == origin)
        dest = next(n for n in self.nodes if n["id"] == target)
        slot = next(i for i, s in enumerate(dest["inputs"]) if s["name"] == input_name)
        dest["inputs"][slot]["link"] = link_id
        link_type = source["outputs"][origin_slot]["type"] if source["outputs"] else "*"
        if source["outputs"]:
            source["outputs"][origin_slot]["links"].append(link_id)
        self.links.append([link_id, origin, origin_slot, target, slot, link_type])
        return link_id

    def doc(self, **extra: Any) -> dict[str, Any]:
        return {
            "last_node_id": max((n["id"] for n in self.nodes), default=0),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": extra,
            "version": 0.4,
        }


def _image_chain(ui: UI) -> None:
    """1 EmptyImage -> ... consumers are added by each test."""
    ui.node(1, "EmptyImage", [64, 32, 1, 0], outputs=["IMAGE"])


def test_widgets_map_by_input_order_and_skip_the_seed_control() -> None:
    ui = UI()
    ui.node(3, "KSampler", [156680208700286, "randomize", 20, 8, "euler", "normal", 1])
    api = ui_to_api(ui.doc(), CAT)
    assert api["3"]["inputs"] == {
        "seed": 156680208700286,
        "steps": 20,
        "cfg": 8,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1,
    }
    assert api["3"]["class_type"] == "KSampler"


@pytest.mark.parametrize("legacy", [True, False])
def test_legacy_boolean_seed_control_is_skipped(legacy: bool) -> None:
    ui = UI()
    ui.node(3, "KSampler", [7, legacy, 30, 6.5, "dpmpp_2m", "karras", 0.5])
    assert ui_to_api(ui.doc(), CAT)["3"]["inputs"]["steps"] == 30


def test_a_file_from_before_the_control_widget_keeps_its_values_aligned() -> None:
    ui = UI()
    ui.node(8, "RandomNoise", [42])
    ui.node(3, "KSampler", [7, 30, 6.5, "dpmpp_2m", "karras", 0.5])  # no control entry at all
    api = ui_to_api(ui.doc(), CAT)
    assert api["8"]["inputs"] == {"noise_seed": 42}
    assert api["3"]["inputs"]["steps"] == 30 and api["3"]["inputs"]["denoise"] == 0.5


def test_image_upload_widget_value_is_not_sent() -> None:
    ui = UI()
    ui.node(4, "LoadImage", ["b.png", "image"], outputs=["IMAGE", "MASK"])
    assert ui_to_api(ui.doc(), CAT)["4"]["inputs"] == {"image": "b.png"}


def test_missing_widget_values_take_their_defaults() -> None:
    ui = UI()
    ui.node(5, "EmptyLatentImage", [1024])
    assert ui_to_api(ui.doc(), CAT)["5"]["inputs"] == {"width": 1024, "height": 512, "batch_size": 1}


def test_linked_widget_input_becomes_a_link_over_the_stale_value() -> None:
    ui = UI()
    ui.node(2, "IntConstant", [9], outputs=["INT"])
    ui.node(3, "KSampler", [1, "fixed", 20, 8, "euler", "normal", 1], inputs=[wid("steps", "INT")])
    ui.link(2, 0, 3, "steps")
    assert ui_to_api(ui.doc(), CAT)["3"]["inputs"]["steps"] == ["2", 0]


def test_primitive_node_value_is_written_into_every_target() -> None:
    ui = UI()
    ui.node(9, "PrimitiveNode", [640, "fixed"], outputs=["INT"])
    ui.node(5, "EmptyLatentImage", [512, 512, 1], inputs=[wid("width", "INT"), wid("height", "INT")])
    ui.link(9, 0, 5, "width")
    ui.link(9, 0, 5, "height")
    api = ui_to_api(ui.doc(), CAT)
    assert "9" not in api
    assert api["5"]["inputs"] == {"width": 640, "height": 640, "batch_size": 1}


def test_reroute_chain_is_passed_through() -> None:
    ui = UI()
    _image_chain(ui)
    ui.node(20, "Reroute", inputs=[sock("", "*")], outputs=["IMAGE"])
    ui.node(21, "Reroute", inputs=[sock("", "*")], outputs=["IMAGE"])
    ui.node(2, "SaveImage", ["out"], inputs=[sock("images", "IMAGE")])
    ui.link(1, 0, 20, "")
    ui.link(20, 0, 21, "")
    ui.link(21, 0, 2, "images")
    api = ui_to_api(ui.doc(), CAT)
    assert set(api) == {"1", "2"}
    assert api["2"]["inputs"] == {"filename_prefix": "out", "images": ["1", 0]}


def test_native_reroutes_on_links_change_nothing() -> None:
    ui = UI()
    _image_chain(ui)
    ui.node(2, "PreviewImage", inputs=[sock("images", "IMAGE")])
    ui.link(1, 0, 2, "images")
    doc = ui.doc(reroutes=[{"id": 1, "pos": [10, 10], "linkIds": [1]}], linkExtensions=[{"id": 1, "parentId": 1}])
    assert ui_to_api(doc, CAT)["2"]["inputs"] == {"images": ["1", 0]}


def test_muted_node_is_dropped_with_the_inputs_it_fed() -> None:
    ui = UI()
    ui.node(2, "IntConstant", [9], outputs=["INT"], mode=2)
    ui.node(6, "ImageInvert", inputs=[sock("image", "IMAGE")], outputs=["IMAGE"], mode=2)
    ui.node(3, "KSampler", [1, "fixed", 20, 8, "euler", "normal", 1], inputs=[wid("steps", "INT")])
    ui.node(7, "PreviewImage", inputs=[sock("images", "IMAGE")])
    ui.link(2, 0, 3, "steps")
    ui.link(6, 0, 7, "images")
    api = ui_to_api(ui.doc(), CAT)
    assert "2" not in api and "6" not in api
    assert "steps" not in api["3"]["inputs"]  # the frontend wrote the link, then deleted it: the widget is gone too
    assert api["7"]["inputs"] == {}


def test_muted_node_of_an_unknown_type_is_fine() -> None:
    ui = UI()
    ui.node(2, "SomeCustomNode", [1, 2], mode=2)
    ui.node(3, "PreviewAny", inputs=[sock("source", "*")])
    assert ui_to_api(ui.doc(), CAT) == {
        "3": {"inputs": {}, "class_type": "PreviewAny", "_meta": {"title": "Preview Any"}}
    }


def test_bypassed_node_passes_the_same_slot_through() -> None:
    ui = UI()
    _image_chain(ui)
    ui.node(6, "ImageInvert", inputs=[sock("image", "IMAGE")], outputs=["IMAGE"], mode=4)
    ui.node(7, "PreviewImage", inputs=[sock("images", "IMAGE")])
    ui.link(1, 0, 6, "image")
    ui.link(6, 0, 7, "images")
    api = ui_to_api(ui.doc(), CAT)
    assert "6" not in api and api["7"]["inputs"] == {"images": ["1", 0]}


def test_bypassed_node_prefers_the_exact_type_then_a_compatible_one() -> None:
    ui = UI()
    ui.node(1, "CheckpointLoaderSimple", ["a.safetensors"], outputs=["MODEL", "CLIP", "VAE"])
    ui.node(5, "EmptyLatentImage", [512, 512, 1], outputs=["LATENT"])
    # A bypassed node whose output 0 (LATENT) has a VAE on its slot 0: the exact LATENT input wins.
    ui.node(6, "Custom", inputs=[sock("vae", "VAE"), sock("latent", "LATENT")], outputs=["LATENT"], mode=4)
    ui.node(8, "VAEDecode", inputs=[sock("samples", "LATENT"), sock("vae", "VAE")], outputs=["IMAGE"])
    ui.link(1, 2, 6, "vae")
    ui.link(5, 0, 6, "latent")
    ui.link(6, 0, 8, "samples")
    ui.link(1, 2, 8, "vae")
    # Output IMAGE,MASK fed to an IMAGE input: no exact match, the first compatible input is used.
    ui.node(11, "LoadImage", ["a.png", "image"], outputs=["IMAGE", "MASK"])
    ui.node(12, "Custom2", inputs=[sock("first", "LATENT"), sock("pix", "IMAGE,MASK")], outputs=["IMAGE,MASK"], mode=4)
    ui.node(13, "ImageOrMask", inputs=[sock("pixels", "IMAGE")], outputs=["IMAGE"])
    ui.node(14, "PreviewImage", inputs=[sock("images", "IMAGE")])
    ui.link(11, 0, 12, "pix")
    ui.link(12, 0, 13, "pixels")
    ui.link(13, 0, 14, "images")
    api = ui_to_api(ui.doc(), CAT)
    assert api["8"]["inputs"] == {"samples": ["5", 0], "vae": ["1", 2]}
    assert api["13"]["inputs"] == {"pixels": ["11", 0]}


def test_bypassed_node_without_a_matching_input_feeds_nothing() -> None:
    ui = UI()
    _image_chain(ui)
    ui.node(6, "ImageToMask", ["red"], inputs=[sock("image", "IMAGE")], outputs=["MASK"], mode=4)
    ui.node(7, "MaskPreview", inputs=[sock("mask", "MASK")])
    ui.link(1, 0, 6, "image")
    ui.link(6, 0, 7, "mask")
    # A widget input fed through such a node keeps its (stale) widget value: nothing overwrote it.
    ui.node(2, "LoadImage", ["a.png", "image"], outputs=["IMAGE", "MASK"], mode=4)
    ui.node(3, "KSampler", [1, "fixed", 20, 8, "euler", "normal", 1], inputs=[wid("steps", "INT")])
    ui.link(2, 0, 3, "steps")
    api = ui_to_api(ui.doc(), CAT)
    assert api["7"]["inputs"] == {}
    assert api["3"]["inputs"]["steps"] == 20


def test_notes_are_dropped_and_titles_kept() -> None:
    ui = UI()
    ui.node(1, "EmptyImage", [64, 64, 1, 0], outputs=["IMAGE"], title="Canvas")
    ui.node(2, "Note", ["read me"])
    ui.node(3, "MarkdownNote", ["# read me"])
    ui.node(4, "PreviewImage", inputs=[sock("images", "IMAGE")])
    ui.link(1, 0, 4, "images")
    api = ui_to_api(ui.doc(), CAT)
    assert set(api) == {"1", "4"}
    assert api["1"]["_meta"] == {"title": "Canvas"}
    assert api["4"]["_meta"] == {"title": "Preview Image"}  # no title saved: the class's display name


def test_version_1_object_links() -> None:
    ui = UI()
    _image_chain(ui)
    ui.node(2, "PreviewImage", inputs=[sock("images", "IMAGE")])
    ui.link(1, 0, 2, "images")
    doc = ui.doc()
    doc["version"] = 1
    doc["links"] = [
        {"id": i, "origin_id": o, "origin_slot": os, "target_id": t, "target_slot": ts, "type": ty}
        for i, o, os, t, ts, ty in doc["links"]
    ]
    assert ui_to_api(doc, CAT)["2"]["inputs"] == {"images": ["1", 0]}


def test_list_values_are_wrapped_for_the_backend() -> None:
    ui = UI()
    ui.node(1, "TagPicker", [["x", "z"]], outputs=["STRING"])
    assert ui_to_api(ui.doc(), CAT)["1"]["inputs"] == {"tags": {"__value__": ["x", "z"]}}


def test_force_input_values_of_the_old_layout_are_dropped() -> None:
    ui = UI()
    # Saved when the forceInput input "a" still had a widget: [a, sep, b].
    ui.node(1, "StringJoin", ["old a", "-", "tail"], inputs=[sock("a", "STRING")], outputs=["STRING"])
    ui.node(2, "StringJoin", ["-", "tail"], inputs=[sock("a", "STRING")], outputs=["STRING"])
    api = ui_to_api(ui.doc(), CAT)
    assert api["1"]["inputs"] == {"sep": "-", "b": "tail"}
    assert api["2"]["inputs"] == {"sep": "-", "b": "tail"}


def test_dynamic_prompts_resolve_with_the_given_rng() -> None:
    ui = UI()
    ui.node(1, "CLIPTextEncode", ["a {red|blue} cat /* note */ // trailing", ""])
    texts = {ui_to_api(ui.doc(), CAT, rng=random.Random(seed))["1"]["inputs"]["text"] for seed in range(20)}
    assert texts == {"a red cat  ", "a blue cat  "}


def test_dynamic_prompt_parser() -> None:
    rng = random.Random(1)
    assert resolve_dynamic_prompt(r"\{literal\} {a|b|c} x", rng) in {"{literal} a x", "{literal} b x", "{literal} c x"}
    assert resolve_dynamic_prompt("{outer {x|x}|outer {x}}", rng) == "outer x"
    assert resolve_dynamic_prompt("see https://example.com/a", rng) == "see https:"  # the frontend does this too
    assert resolve_dynamic_prompt("plain", rng) == "plain"


def test_unknown_node_type_is_reported_with_id_type_and_title() -> None:
    ui = UI()
    ui.node(12, "FancyCustomNode", [1], title="My fancy node")
    with pytest.raises(ConversionError) as caught:
        ui_to_api(ui.doc(), CAT)
    error = caught.value
    assert (error.node_id, error.node_type, error.title) == ("12", "FancyCustomNode", "My fancy node")
    assert "not in the /object_info catalogue" in error.reason
    assert str(error).startswith("node 12 (FancyCustomNode, 'My fancy node'): ")


def test_not_a_ui_workflow_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="not a UI workflow"):
        ui_to_api({"1": {"class_type": "EmptyImage", "inputs": {}}}, CAT)
    with pytest.raises(ConversionError, match="link array"):
        ui_to_api({"nodes": [], "links": [[1, 2]]}, CAT)


def test_a_reroute_loop_is_reported_not_followed_forever() -> None:
    ui = UI()
    ui.node(20, "Reroute", inputs=[sock("", "*")], outputs=["IMAGE"])
    ui.node(21, "Reroute", inputs=[sock("", "*")], outputs=["IMAGE"])
    ui.node(2, "PreviewImage", inputs=[sock("images", "IMAGE")])
    ui.link(20, 0, 21, "")
    ui.link(21, 0, 20, "")
    ui.link(21, 0, 2, "images")
    with pytest.raises(ConversionError, match="loop") as caught:
        ui_to_api(ui.doc(), CAT)
    assert (caught.value.node_id, caught.value.node_type) in {("20", "Reroute"), ("21", "Reroute")}


# -- subgraphs --------------------------------------------------------------------------------------------------------

_SUB = "5b9c2f3e-0000-4000-8000-000000000001"
_INNER = "5b9c2f3e-0000-4000-8000-000000000002"


def _subgraph_doc(*, instance_widgets: list[Any], feed_image: bool = True) -> dict[str, Any]:
    """Root: 1 EmptyImage -> 10 [subgraph: blend(image, factor) -> invert -> nested 20 [invert]] -> 2 Preview."""
    inner_nodes = [
        {
            "id": 1,
            "type": "ImageInvert",
            "mode": 0,
            "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
            "widgets_values": [],
        }
    ]
    inner = {
        "id": _INNER,
        "name": "inner",
        "inputs": [{"id": "i0", "name": "image", "type": "IMAGE", "linkIds": [1]}],
        "outputs": [{"id": "o0", "name": "IMAGE", "type": "IMAGE", "linkIds": [2]}],
        "widgets": [],
        "nodes": inner_nodes,
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
            {"id": 2, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
        ],
    }
    outer_nodes = [
        {
            "id": 3,
            "type": "ImageBlend",
            "mode": 0,
            "title": "Blend",
            "inputs": [
                {"name": "image1", "type": "IMAGE", "link": 11},
                {"name": "image2", "type": "IMAGE", "link": 12},
                {"name": "blend_factor", "type": "FLOAT", "widget": {"name": "blend_factor"}, "link": 13},
            ],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [14]}],
            "widgets_values": [0.25],
        },
        {
            "id": 20,
            "type": _INNER,
            "mode": 0,
            "inputs": [{"name": "image", "type": "IMAGE", "link": 14}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [15]}],
            "widgets_values": [],
        },
    ]
    outer = {
        "id": _SUB,
        "name": "outer",
        "inputs": [
            {"id": "a", "name": "image", "type": "IMAGE", "linkIds": [11, 12]},
            {"id": "b", "name": "factor", "type": "FLOAT", "linkIds": [13]},
        ],
        "outputs": [{"id": "c", "name": "IMAGE", "type": "IMAGE", "linkIds": [15]}],
        "widgets": [],
        "nodes": outer_nodes,
        "links": [
            {"id": 11, "origin_id": -10, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "IMAGE"},
            {"id": 12, "origin_id": -10, "origin_slot": 0, "target_id": 3, "target_slot": 1, "type": "IMAGE"},
            {"id": 13, "origin_id": -10, "origin_slot": 1, "target_id": 3, "target_slot": 2, "type": "FLOAT"},
            {"id": 14, "origin_id": 3, "origin_slot": 0, "target_id": 20, "target_slot": 0, "type": "IMAGE"},
            {"id": 15, "origin_id": 20, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
        ],
    }
    ui = UI()
    _image_chain(ui)
    ui.node(
        10,
        _SUB,
        instance_widgets,
        inputs=[sock("image", "IMAGE"), wid("factor", "FLOAT")],
        outputs=["IMAGE"],
    )
    ui.node(2, "PreviewImage", inputs=[sock("images", "IMAGE")])
    if feed_image:
        ui.link(1, 0, 10, "image")
    ui.link(10, 0, 2, "images")
    doc = ui.doc()
    doc["definitions"] = {"subgraphs": [outer, inner]}
    return doc


def test_subgraph_inner_nodes_get_colon_joined_ids_and_links_cross_boundaries() -> None:
    api = ui_to_api(_subgraph_doc(instance_widgets=[0.75]), CAT)
    assert set(api) == {"1", "10:3", "10:20:1", "2"}
    assert api["10:3"] == {
        "inputs": {"blend_factor": 0.75, "image1": ["1", 0], "image2": ["1", 0]},
        "class_type": "ImageBlend",
        "_meta": {"title": "Blend"},
    }
    assert api["10:20:1"]["inputs"] == {"image": ["10:3", 0]}
    assert api["2"]["inputs"] == {"images": ["10:20:1", 0]}


def test_unlinked_subgraph_input_without_a_saved_value_keeps_the_inner_widget() -> None:
    api = ui_to_api(_subgraph_doc(instance_widgets=[], feed_image=False), CAT)
    assert api["10:3"]["inputs"] == {"blend_factor": 0.25}  # images: nothing feeds the subgraph input


def test_bypassed_subgraph_instance_passes_its_input_through() -> None:
    doc = _subgraph_doc(instance_widgets=[0.5])
    next(n for n in doc["nodes"] if n["id"] == 10)["mode"] = 4
    api = ui_to_api(doc, CAT)
    assert set(api) == {"1", "2"} and api["2"]["inputs"] == {"images": ["1", 0]}


def test_legacy_group_node_is_expanded_with_index_ids() -> None:
    group = {
        "nodes": [
            {
                "index": 0,
                "type": "ImageInvert",
                "inputs": [{"name": "image", "type": "IMAGE", "link": None}],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
                "widgets_values": [],
            },
            {
                "index": 1,
                "type": "ImageBlend",
                "inputs": [
                    {"name": "image1", "type": "IMAGE", "link": 1},
                    {"name": "image2", "type": "IMAGE", "link": None},
                ],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}],
                "widgets_values": [0.5],
            },
        ],
        "links": [[0, 0, 1, 0, 1, "IMAGE"]],
        "external": [],
    }
    ui = UI()
    _image_chain(ui)
    ui.node(
        7,
        "workflow>InvertBlend",
        [0.9],
        inputs=[sock("image", "IMAGE"), sock("image2", "IMAGE")],
        outputs=["IMAGE"],
    )
    ui.node(2, "PreviewImage", inputs=[sock("images", "IMAGE")])
    ui.link(1, 0, 7, "image")
    ui.link(1, 0, 7, "image2")
    ui.link(7, 0, 2, "images")
    api = ui_to_api(ui.doc(groupNodes={"InvertBlend": group}), CAT)
    assert set(api) == {"1", "7:0", "7:1", "2"}
    assert api["7:0"]["inputs"] == {"image": ["1", 0]}
    assert api["7:1"]["inputs"] == {"blend_factor": 0.9, "image1": ["7:0", 0], "image2": ["1", 0]}
    assert api["2"]["inputs"] == {"images": ["7:1", 0]}


def test_group_node_inputs_list_sockets_first_then_converted_widgets() -> None:
    group = {
        "nodes": [
            {
                "type": "ImageBlend",
                "inputs": [
                    {"name": "image1", "type": "IMAGE", "link": None},
                    {"name": "image2", "type": "IMAGE", "link": None},
                    {"name": "blend_factor", "type": "FLOAT", "widget": {"name": "blend_factor"}, "link": None},
                ],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}],
                "widgets_values": [0.5],
            },
            {
                "type": "ImageInvert",
                "inputs": [{"name": "image", "type": "IMAGE", "link": None}],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}],
                "widgets_values": [],
            },
        ],
        "links": [],
        "external": [],
        "config": {"1": {"output": {"0": {"visible": False}}}},
    }
    ui = UI()
    _image_chain(ui)
    ui.node(2, "IntConstant", [1], outputs=["INT"])
    inputs = [sock("a", "IMAGE"), sock("b", "IMAGE"), sock("c", "IMAGE"), sock("factor", "FLOAT")]
    ui.node(7, "workflow/Pair", [], inputs=inputs, outputs=["IMAGE"])  # no widgets: blend_factor is an input
    ui.node(3, "PreviewImage", inputs=[sock("images", "IMAGE")])
    for name in ("a", "b", "c"):
        ui.link(1, 0, 7, name)
    ui.link(7, 0, 3, "images")  # the only visible output: the blend's (the invert's is hidden by config)
    api = ui_to_api(ui.doc(groupNodes={"Pair": group}), CAT)
    assert api["7:0"]["inputs"]["blend_factor"] == 0.5  # the inner node's own value: nothing feeds the input
    ui.link(2, 0, 7, "factor")
    api = ui_to_api(ui.doc(groupNodes={"Pair": group}), CAT)
    assert api["7:0"]["inputs"] == {"blend_factor": ["2", 0], "image1": ["1", 0], "image2": ["1", 0]}
    assert api["7:1"]["inputs"] == {"image": ["1", 0]}
    assert api["3"]["inputs"] == {"images": ["7:0", 0]}


def test_group_node_without_its_definition_is_reported() -> None:
    ui = UI()
    ui.node(7, "workflow>Gone", [])
    with pytest.raises(ConversionError, match=r"'Gone' is missing from extra\.groupNodes") as caught:
        ui_to_api(ui.doc(), CAT)
    assert caught.value.node_id == "7"


@pytest.mark.parametrize(
    ("field", "value"),
    [("inputs", True), ("outputs", 3), ("properties", [1]), ("widgets_values", "x")],
)
def test_a_node_field_of_the_wrong_shape_is_a_conversion_error(field: str, value: Any) -> None:
    """Found by the fuzzer (issue 11): ``"inputs": true`` was iterated and raised TypeError (an internal error)."""
    document = {
        "nodes": [
            {"id": 1, "type": "EmptyImage", "widgets_values": [64, 64, 1, 0], field: value},
            {"id": 2, "type": "SaveImage", "widgets_values": ["x"], "inputs": [{"name": "images", "link": 1}]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    with contextlib.suppress(ConversionError):
        ui_to_api(document, CATALOGUE)


def test_links_of_the_wrong_shape_are_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="must be a list"):
        ui_to_api({"nodes": [], "links": {"1": [1, 1, 0, 2, 0]}}, CATALOGUE)
