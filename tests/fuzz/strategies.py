"""Hypothesis strategies for hostile input: any JSON, job-shaped JSON with hostile values, API graphs built from the
real catalogue's classes and inputs, and real UI workflows with parts replaced."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from hypothesis import strategies as st

from handlers.workflow import Catalogue
from tests.conftest import OBJECT_INFO, TRANSCRIPTS

#: Strings that have broken parsers before: separators, dots, unicode, placeholders, huge numbers as text.
NASTY_TEXT = st.sampled_from(
    [
        "",
        ".",
        "..",
        "../x",
        "a/../../b",
        "{{prompt}}",
        "{{",
        "}}",
        "1e999",
        "NaN",
        "\x00",
        "\u202e",
        "ü",
        "enable",
        "face.png",
        "KSampler.seed",
        "3.seed",
        "7:1.seed",
        "http://169.254.169.254/",
        "s3://bucket/key",
        "data:image/png;base64,AAAA",
        "image/sdxl-basic",
        "a" * 300,
    ]
)
TEXT = st.one_of(NASTY_TEXT, st.text(max_size=40))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(TEXT, children, max_size=5)),
    max_leaves=25,
)


@cache
def catalogue() -> Catalogue:
    return Catalogue(json.loads(OBJECT_INFO.read_text()))


@cache
def _class_names() -> tuple[str, ...]:
    wanted = (
        "CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "KSamplerAdvanced", "EmptyLatentImage", "VAEDecode",
        "SaveImage", "PreviewImage", "LoadImage", "LoadImageMask", "LoadAudio", "SaveAudio", "ImageScale",
        "EmptyImage", "ImageInvert", "LoraLoader", "PrimitiveString", "PreviewAny", "SaveAnimatedWEBP",
        "ImagePadForOutpaint", "VAEEncodeForInpaint", "LatentUpscale",
    )  # fmt: skip
    return tuple(name for name in wanted if name in catalogue())


def _input_value(node_ids: list[str]) -> st.SearchStrategy[Any]:
    link = st.tuples(st.sampled_from([*node_ids, "missing", "7:1"]), st.integers(-1, 4)).map(list)
    return st.one_of(SCALARS, link, JSON)


@st.composite
def api_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """API graphs of real classes with real input names (and some junk), values and links of every kind."""
    count = draw(st.integers(1, 8))
    node_ids = [str(i) for i in range(1, count + 1)]
    graph: dict[str, Any] = {}
    for node_id in node_ids:
        class_type = draw(st.one_of(st.sampled_from(_class_names()), TEXT))
        known = [spec.name for spec in catalogue()[class_type].inputs] if class_type in catalogue() else []
        names = draw(st.lists(st.one_of(st.sampled_from(known), TEXT) if known else TEXT, max_size=6))
        inputs = {name: draw(_input_value(node_ids)) for name in names}
        node: dict[str, Any] = {"class_type": class_type, "inputs": inputs}
        if draw(st.booleans()):
            node["_meta"] = {"title": draw(TEXT)}
        graph[node_id] = node
    return graph


@cache
def _ui_seeds() -> tuple[dict[str, Any], ...]:
    """Real UI workflows: the one posted in the recordings, and the library's graphs are API, so this is small."""
    raw = json.loads((TRANSCRIPTS / "92_ui_format_posted.json").read_text())
    return (raw["post_prompt"]["request_json"]["prompt"],)


@st.composite
def ui_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """A real UI workflow with hostile replacements: widget values, links, node types, ids, extra nodes."""
    graph = copy.deepcopy(draw(st.sampled_from(_ui_seeds())))
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(["widgets", "links", "type", "id", "node", "inputs", "top"]))
        nodes = graph.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            break
        node = draw(st.sampled_from(nodes))
        if not isinstance(node, dict):
            continue
        if target == "widgets":
            node["widgets_values"] = draw(st.lists(SCALARS, max_size=6))
        elif target == "links":
            graph["links"] = draw(st.lists(st.lists(st.one_of(st.integers(-2, 5), TEXT), max_size=7), max_size=4))
        elif target == "type":
            node["type"] = draw(st.one_of(st.sampled_from(_class_names()), TEXT))
        elif target == "id":
            node["id"] = draw(st.one_of(st.integers(-2, 5), TEXT, st.none()))
        elif target == "node":
            nodes.append(draw(JSON))
        elif target == "inputs":
            node["inputs"] = draw(JSON)
        else:
            graph[draw(st.sampled_from(["links", "groups", "extra", "definitions", "nodes"]))] = draw(JSON)
    return graph


def media_items() -> st.SearchStrategy[Any]:
    item = st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.sampled_from(["face", "enable", "face.png", "voice"]), TEXT),
            "url": st.one_of(st.just("https://example.com/a.png"), TEXT),
            "base64": st.one_of(st.just("iVBORw0KGgo="), TEXT),
            "s3": st.one_of(st.just("s3://bucket/a.png"), TEXT),
            "mime": TEXT,
        },
    )
    return st.one_of(item, JSON)


def job_inputs() -> st.SearchStrategy[Any]:
    """Job-shaped dicts (every field, plausible or hostile), or any JSON at all."""
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "workflow": st.one_of(api_graphs(), ui_graphs(), JSON),
            "template": st.one_of(st.sampled_from(["image/sdxl-basic", "image/blur", "nope/nope"]), TEXT),
            "character": st.one_of(st.just("ava"), TEXT),
            "params": st.one_of(
                st.dictionaries(
                    st.one_of(st.sampled_from(["prompt", "seed", "seeds", "count", "width", "megapixels"]), TEXT),
                    JSON,
                    max_size=5,
                ),
                JSON,
            ),
            "overrides": st.one_of(st.dictionaries(TEXT, JSON, max_size=4), JSON),
            "media": st.one_of(st.lists(media_items(), max_size=4), JSON),
            "images": st.one_of(st.lists(JSON, max_size=3), JSON),
            "output": st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"bucket": TEXT, "prefix": TEXT, "format": TEXT, "quality": SCALARS}
                ),
                JSON,
            ),
            "job_id": st.one_of(st.just("job-1"), TEXT, SCALARS),
            "timeout_s": SCALARS,
            "progress_webhook": st.one_of(
                st.fixed_dictionaries({"url": TEXT, "secret": st.one_of(TEXT, st.just("s" * 16))}), JSON
            ),
        },
    )
    return st.one_of(shaped, JSON)


def queue_bodies() -> st.SearchStrategy[str]:
    """SQS message bodies: JSON-shaped queue messages, any JSON, and text that is not JSON at all."""
    message = st.fixed_dictionaries(
        {"input": job_inputs()},
        optional={
            "job_id": st.one_of(st.just("job-1"), TEXT, SCALARS),
            "endpoint_id": TEXT,
            "priority": TEXT,
            "policy": JSON,
            "notify": st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"webhook_url": TEXT, "webhook_secret": TEXT, "sqs_queue_url": TEXT}
                ),
                JSON,
            ),
        },
    )
    as_text = st.one_of(message, JSON).map(lambda v: json.dumps(v, allow_nan=True))
    return st.one_of(as_text, st.text(max_size=200), st.sampled_from(["[" * 2000, '{"input": ' * 500, "1e999"]))
