"""Small pure helpers the graph edits share: fresh node ids, who consumes an output, rewiring links."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from handlers.workflow._node_refs import is_link

__all__ = ["consumers", "fresh_ids", "link_source", "rewire"]

_DIGITS = re.compile(r"\d+")


def fresh_ids(graph: Mapping[str, Any]) -> Iterator[str]:
    """Node ids no node of ``graph`` has, above every number in its ids (``"194:45"`` counts 194 and 45), so an added
    node can never take the id of a node inside a subgraph either."""
    numbers = [int(n) for node_id in graph for n in _DIGITS.findall(str(node_id))]
    next_id = max(numbers, default=0) + 1
    while True:
        if str(next_id) not in graph:
            yield str(next_id)
        next_id += 1


def link_source(value: Any) -> tuple[str, int] | None:
    """``(node id, output slot)`` when ``value`` is a link."""
    return (value[0], value[1]) if is_link(value) else None


def consumers(graph: Mapping[str, Any], source: tuple[str, int]) -> list[tuple[str, str]]:
    """Every ``(node id, input name)`` fed by output ``source``, in graph order."""
    found = []
    for node_id, node in graph.items():
        for name, value in node.get("inputs", {}).items():
            if link_source(value) == source:
                found.append((node_id, name))
    return found


def rewire(graph: dict[str, Any], targets: list[tuple[str, str]], new_source: tuple[str, int]) -> None:
    """Point each ``(node id, input)`` of ``targets`` at ``new_source`` (in place: callers pass their own copy)."""
    for node_id, name in targets:
        graph[node_id]["inputs"][name] = [new_source[0], new_source[1]]
