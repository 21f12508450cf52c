"""Which of a character's assets a bound workflow uses, and the graph once they are placed. Pure.

The rule is the one a reader of the graph would apply: an asset is used when a node input's whole value is the
asset's file name (``lora_name: "ava_v1.safetensors"``, ``image: "ava_front.png"``), however it got there: a
character default, a template default, a job's ``params.loras`` or ``identity`` edit. An input bound to one of the
job's own media items is the job's file, never the pack's, even when the names are equal.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from handlers.workflow._binding import BoundWorkflow
from handlers.workflow._character import CharacterProfile, PackEntry

__all__ = ["assets_used", "with_placed_assets"]


def _asset_inputs(bound: BoundWorkflow, files: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """``(node id, input, file)`` of every input holding one of ``files``, the job's media targets excepted."""
    own = {target for media in bound.media if media.from_job for target in media.targets}
    for node_id, node in bound.graph.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        for name, value in inputs.items():
            if isinstance(value, str) and value in files and (node_id, name) not in own:
                yield node_id, name, value


def assets_used(profile: CharacterProfile, bound: BoundWorkflow) -> list[PackEntry]:
    """The pack's assets ``bound`` uses, in manifest order."""
    by_file = {entry.asset.file: entry for entry in profile.assets()}
    used = {file for _, _, file in _asset_inputs(bound, by_file)}
    return [entry for entry in profile.assets() if entry.asset.file in used]


def with_placed_assets(bound: BoundWorkflow, placed: Mapping[str, str]) -> BoundWorkflow:
    """``bound`` whose inputs naming an asset (``placed``: file name -> the name ComfyUI sees once placed, such as
    ``relay-assets/<sha>/ava_v1.safetensors`` or ``<job id>/character/ava_front.png``) name the placed file."""
    graph = copy.deepcopy(bound.graph)
    for node_id, name, file in list(_asset_inputs(bound, placed)):
        graph[node_id]["inputs"][name] = placed[file]
    return replace(bound, graph=graph)
