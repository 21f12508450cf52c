"""Several variants of one workflow (a seed batch) as ONE API graph, so a job stays one ComfyUI prompt with one
deterministic prompt id.

Variant 1 keeps its node ids. A node of a later variant that computes exactly what a node already in the merged
graph computes (same class, same inputs, same upstream nodes, recursively) is not copied: its consumers link to
the existing node, so loaders and text encoders run once and only the seed-dependent part is duplicated. Every
other node gets the id ``"<variant>:<id>"`` (the shape of ComfyUI's own subgraph node ids, which its API accepts)
and a ``" #<variant>"`` suffix on its title, so titles stay unique.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from handlers.contract import SeedUsed, Variation
from handlers.workflow._binding import BoundWorkflow, MediaBinding
from handlers.workflow._node_refs import is_link

__all__ = ["merge_variants", "variant_node_id"]


def variant_node_id(variant: int, node_id: str) -> str:
    """The id a duplicated node of variant ``variant`` (1-based; 2 and up) would get, before collision checks."""
    return f"{variant}:{node_id}"


def _signatures(graph: Mapping[str, Any]) -> dict[str, str]:
    """Each node's structural digest: its class and inputs, every link replaced by its source's digest. A node on
    a cycle, or linked to a missing node, gets a digest of its own id (it is never shared).

    Iterative (an explicit stack, children before parents): a chain of any length is one more entry on the stack,
    never one more Python frame."""
    digests: dict[str, str] = {}
    visiting: set[str] = set()

    def links(node: Mapping[str, Any]) -> list[str]:
        return [value[0] for value in (node.get("inputs") or {}).values() if is_link(value)]

    def seal(node_id: str, node: Mapping[str, Any]) -> None:
        inputs: dict[str, Any] = {}
        shareable = True
        for name, value in (node.get("inputs") or {}).items():
            if is_link(value):
                upstream = digests.get(value[0], "unshared:" + str(value[0]))
                shareable = shareable and not upstream.startswith("unshared:")
                inputs[name] = ["link", upstream, value[1]]
            else:
                inputs[name] = ["value", value]
        if not shareable:
            digests[node_id] = "unshared:" + node_id
            return
        text = json.dumps([node.get("class_type"), inputs], sort_keys=True, separators=(",", ":"), default=repr)
        digests[node_id] = hashlib.sha256(text.encode()).hexdigest()

    for root in graph:
        if root in digests:
            continue
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            node_id, expanded = stack.pop()
            node = graph.get(node_id)
            if expanded:
                visiting.discard(node_id)
                assert isinstance(node, Mapping)
                seal(node_id, node)
                continue
            if node_id in digests:
                continue
            if not isinstance(node, Mapping) or node_id in visiting:
                # Missing, or on a cycle: its consumer reads "unshared" for it (never stored, as before).
                continue
            visiting.add(node_id)
            stack.append((node_id, True))
            stack.extend((upstream, False) for upstream in reversed(links(node)) if upstream not in digests)
    return {node_id: digests[node_id] for node_id in graph if node_id in digests}


def _remap_inputs(inputs: Mapping[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: [ids.get(value[0], value[0]), value[1]] if is_link(value) else copy.deepcopy(value)
        for name, value in inputs.items()
    }


def merge_variants(variants: Sequence[BoundWorkflow], labels: Sequence[Variation] | None = None) -> BoundWorkflow:
    """One workflow running every variant: see the module's description. Seeds, media bindings and warnings of
    all variants are combined, with node ids as they are in the merged graph (``with_staged`` keeps working).
    ``labels`` (one per variant) become the merged workflow's :attr:`~BoundWorkflow.variations`, each node
    attributed to the first variant that has it."""
    if not variants:
        raise ValueError("merge_variants needs at least one variant")
    if labels is not None and len(labels) != len(variants):
        raise ValueError("merge_variants needs one label per variant")
    first = variants[0]
    if len(variants) == 1:
        if labels is None:
            return first
        return replace(first, variations=tuple(labels), variation_of=dict.fromkeys(first.graph, 0))
    merged: dict[str, Any] = copy.deepcopy(first.graph)
    by_digest: dict[str, str] = {}
    for node_id, digest in _signatures(merged).items():
        by_digest.setdefault(digest, node_id)
    id_maps: list[dict[str, str]] = [{node_id: node_id for node_id in merged}]
    for number, variant in enumerate(variants[1:], start=2):
        ids: dict[str, str] = {}
        copied: list[str] = []
        # Shared only with earlier variants: two equal nodes within a variant stay two, as in variant 1.
        added: dict[str, str] = {}
        for node_id, digest in _signatures(variant.graph).items():
            shared = by_digest.get(digest)
            if shared is not None and not digest.startswith("unshared:"):
                ids[node_id] = shared
                continue
            new_id = variant_node_id(number, node_id)
            while new_id in merged:
                new_id = variant_node_id(number, new_id)
            ids[node_id] = new_id
            copied.append(node_id)
            merged[new_id] = None  # reserves the id; filled once every id of this variant is known
            if not digest.startswith("unshared:"):
                added.setdefault(digest, new_id)
        for node_id in copied:
            node = copy.deepcopy(dict(variant.graph[node_id]))
            node["inputs"] = _remap_inputs(node.get("inputs") or {}, ids)
            meta = node.get("_meta")
            if isinstance(meta, Mapping) and isinstance(meta.get("title"), str):
                node["_meta"] = {**meta, "title": f"{meta['title']} #{number}"}
            merged[ids[node_id]] = node
        for digest, new_id in added.items():
            by_digest.setdefault(digest, new_id)
        id_maps.append(ids)
    variation_of: dict[str, int] = {}
    if labels is not None:
        for index, ids in enumerate(id_maps):
            for node_id in ids.values():
                variation_of.setdefault(node_id, index)
    return replace(
        first,
        graph=merged,
        seeds=_merge_seeds(variants, id_maps),
        media=_merge_media(variants, id_maps),
        warnings=list(dict.fromkeys(w for v in variants for w in v.warnings)),
        variations=tuple(labels or ()),
        variation_of=variation_of,
    )


def _merge_seeds(variants: Sequence[BoundWorkflow], id_maps: Sequence[Mapping[str, str]]) -> list[SeedUsed]:
    seeds: dict[tuple[str, str], SeedUsed] = {}
    for variant, ids in zip(variants, id_maps, strict=True):
        for seed in variant.seeds:
            node_id = ids.get(seed.node_id, seed.node_id)
            seeds.setdefault((node_id, seed.input), seed.model_copy(update={"node_id": node_id}))
    # Variant order, then graph order within a variant: the result lists each variant's seeds together.
    return list(seeds.values())


def _merge_media(variants: Sequence[BoundWorkflow], id_maps: Sequence[Mapping[str, str]]) -> list[MediaBinding]:
    merged: dict[tuple[str, Any, str, bool], list[tuple[str, str]]] = {}
    for variant, ids in zip(variants, id_maps, strict=True):
        for binding in variant.media:
            targets = merged.setdefault((binding.param, binding.type, binding.value, binding.from_job), [])
            for node_id, input_name in binding.targets:
                target = (ids.get(node_id, node_id), input_name)
                if target not in targets:
                    targets.append(target)
    return [
        MediaBinding(param, kind, value, from_job, tuple(targets))
        for (param, kind, value, from_job), targets in merged.items()
    ]
