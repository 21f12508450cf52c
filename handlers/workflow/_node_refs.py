"""Addressing nodes of an API graph by id or by title (``_meta.title``), as parameters and overrides do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["NodeIndex", "NodeRefError", "is_link"]


class NodeRefError(LookupError):
    """A node reference names no node, or a title that several nodes share."""


def is_link(value: Any) -> bool:
    """``["<node id>", <output index>]``: an input fed by another node's output."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


class NodeIndex:
    """Ids and titles of a graph's nodes. An id always wins over a title, so an id-like title cannot shadow a node."""

    def __init__(self, graph: Mapping[str, Any]) -> None:
        self._graph = graph
        self._titles: dict[str, list[str]] = {}
        for node_id in graph:
            title = self.title(node_id)
            if title is not None:
                self._titles.setdefault(title, []).append(node_id)

    def title(self, node_id: str) -> str | None:
        node = self._graph.get(node_id)
        meta = node.get("_meta") if isinstance(node, Mapping) else None
        title = meta.get("title") if isinstance(meta, Mapping) else None
        return title if isinstance(title, str) else None

    def resolve(self, ref: str) -> str:
        """The id of the node ``ref`` names; :class:`NodeRefError` if none or several."""
        if ref in self._graph:
            return ref
        ids = self._titles.get(ref, [])
        if len(ids) == 1:
            return ids[0]
        if ids:
            raise NodeRefError(
                f"title {ref!r} is ambiguous: nodes {', '.join(sorted(ids))} share it (address one by id)"
            )
        raise NodeRefError(f"no node with id or title {ref!r}")

    def inputs(self, node_id: str) -> Mapping[str, Any]:
        node = self._graph[node_id]
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        return inputs if isinstance(inputs, Mapping) else {}

    def class_type(self, node_id: str) -> str | None:
        node = self._graph[node_id]
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        return class_type if isinstance(class_type, str) else None

    def resolve_input(self, ref: str, input_name: str) -> str:
        """The id of the node ``ref`` names, checking that it has an input ``input_name``. Only inputs present in
        the graph count: an API export lists every widget and link, so a missing one is a typo."""
        node_id = self.resolve(ref)
        inputs = self.inputs(node_id)
        if input_name not in inputs:
            known = ", ".join(sorted(inputs)) or "none"
            where = f"node {node_id}" + (f" ({self.class_type(node_id)})" if self.class_type(node_id) else "")
            raise NodeRefError(f"{where} has no input {input_name!r} (inputs: {known})")
        return node_id
