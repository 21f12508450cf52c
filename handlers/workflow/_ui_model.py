"""The UI ("Save") workflow format read into plain records: nodes, links, subgraph and group-node definitions.

Accepts both link formats (schema 0.4 arrays ``[id, origin, origin_slot, target, target_slot, type]`` and version 1
objects) and ignores what only the canvas needs (positions, sizes, groups, native reroute points: a native reroute
never changes a link's origin, so following links needs nothing from ``extra.reroutes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SUBGRAPH_INPUT_ID",
    "SUBGRAPH_OUTPUT_ID",
    "UIFormatError",
    "UIGraph",
    "UIInput",
    "UILink",
    "UINode",
    "UIOutput",
    "UISlot",
    "UIWorkflow",
    "is_ui_workflow",
    "parse_ui_workflow",
]

# The frontend's ids for the synthetic boxes inside a subgraph that stand for its inputs and outputs.
SUBGRAPH_INPUT_ID = -10
SUBGRAPH_OUTPUT_ID = -20


class UIFormatError(ValueError):
    """The document is not a UI workflow this module can read (reason in the message)."""


@dataclass(frozen=True, slots=True)
class UIInput:
    name: str
    type: str
    link: int | None
    widget: str | None  # set when this socket belongs to a widget ("converted widget")


@dataclass(frozen=True, slots=True)
class UIOutput:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class UINode:
    id: int | str
    type: str
    title: str | None
    mode: int
    inputs: tuple[UIInput, ...]
    outputs: tuple[UIOutput, ...]
    widgets_values: list[Any] | dict[str, Any] | None
    properties: Mapping[str, Any]

    def input_named(self, name: str) -> UIInput | None:
        return next((i for i in self.inputs if i.name == name), None)


@dataclass(frozen=True, slots=True)
class UILink:
    id: int
    origin_id: int | str
    origin_slot: int
    target_id: int | str
    target_slot: int
    type: str


@dataclass(frozen=True, slots=True)
class UISlot:
    """One input or output of a subgraph definition."""

    name: str
    type: str
    link_ids: tuple[int, ...] = ()  # a stale extra link can linger in ``links``: these are the live ones


@dataclass(frozen=True, slots=True)
class UIGraph:
    """One graph level: the root, or a subgraph definition (which also has ``inputs``/``outputs``)."""

    nodes: tuple[UINode, ...]
    links: Mapping[int, UILink]
    id: str = ""
    name: str = ""
    inputs: tuple[UISlot, ...] = ()
    outputs: tuple[UISlot, ...] = ()
    _by_id: Mapping[int | str, UINode] = field(repr=False, compare=False, default_factory=dict)

    def node(self, node_id: int | str) -> UINode | None:
        return self._by_id.get(node_id)


@dataclass(frozen=True, slots=True)
class UIWorkflow:
    root: UIGraph
    subgraphs: Mapping[str, UIGraph]
    group_nodes: Mapping[str, Mapping[str, Any]]  # legacy ``extra.groupNodes``, raw


def is_ui_workflow(document: Any) -> bool:
    return isinstance(document, Mapping) and isinstance(document.get("nodes"), list)


def _node_id(value: Any, where: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UIFormatError(f"{where}: node id must be an integer or a string, got {value!r}")
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        raise UIFormatError(f"{where}: expected an integer, got {value!r}")
    return value


def _type_name(value: Any) -> str:
    # Slot types are strings; "*" may be saved as 0 or -1 by old litegraph versions.
    return value if isinstance(value, str) else "*"


def _parse_link(raw: Any, where: str) -> UILink:
    if isinstance(raw, list | tuple):
        if len(raw) < 5:
            raise UIFormatError(f"{where}: a link array needs at least 5 entries, got {raw!r}")
        link_id, origin, origin_slot, target, target_slot = raw[:5]
        link_type = raw[5] if len(raw) > 5 else "*"
    elif isinstance(raw, Mapping):
        try:
            link_id, origin, origin_slot = raw["id"], raw["origin_id"], raw["origin_slot"]
            target, target_slot = raw["target_id"], raw["target_slot"]
        except KeyError as exc:
            raise UIFormatError(f"{where}: link object without {exc.args[0]!r}") from exc
        link_type = raw.get("type", "*")
    else:
        raise UIFormatError(f"{where}: a link must be an array or an object, got {raw!r}")
    return UILink(
        id=_int(link_id, where),
        origin_id=_node_id(origin, where),
        origin_slot=_int(origin_slot, where),
        target_id=_node_id(target, where),
        target_slot=_int(target_slot, where),
        type=_type_name(link_type),
    )


def _items(raw: Any, where: str) -> list[Any]:
    """A list the format says is a list: absent or null is empty, anything else is a format error (never iterated
    as whatever it happens to be)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UIFormatError(f"{where} must be a list, got {type(raw).__name__}")
    return raw


def _parse_node(raw: Any, where: str) -> UINode:
    if not isinstance(raw, Mapping):
        raise UIFormatError(f"{where}: a node must be an object")
    node_id = _node_id(raw.get("id"), where)
    node_type = raw.get("type")
    if not isinstance(node_type, str) or not node_type:
        raise UIFormatError(f"{where} (node {node_id}): missing its type")
    inputs = []
    for slot in _items(raw.get("inputs"), f"{where} (node {node_id}) inputs"):
        if not isinstance(slot, Mapping):
            continue
        widget = slot.get("widget")
        link = slot.get("link")
        inputs.append(
            UIInput(
                name=str(slot.get("name", "")),
                type=_type_name(slot.get("type")),
                link=None if link is None else _int(link, f"{where} (node {node_id}) input {slot.get('name')!r}"),
                widget=str(widget["name"]) if isinstance(widget, Mapping) and "name" in widget else None,
            )
        )
    outputs = tuple(
        UIOutput(name=str(slot.get("name", "")), type=_type_name(slot.get("type")))
        for slot in _items(raw.get("outputs"), f"{where} (node {node_id}) outputs")
        if isinstance(slot, Mapping)
    )
    values = raw.get("widgets_values")
    properties = raw.get("properties")
    title = raw.get("title")
    mode = raw.get("mode", 0)
    return UINode(
        id=node_id,
        type=node_type,
        title=title if isinstance(title, str) else None,
        mode=mode if isinstance(mode, int) else 0,
        inputs=tuple(inputs),
        outputs=outputs,
        widgets_values=values if isinstance(values, list | dict) else None,
        properties=properties if isinstance(properties, Mapping) else {},
    )


def _parse_slots(raw: Any, where: str) -> tuple[UISlot, ...]:
    return tuple(
        UISlot(
            name=str(slot.get("name", "")),
            type=_type_name(slot.get("type")),
            link_ids=tuple(
                i
                for i in _items(slot.get("linkIds"), f"{where} linkIds")
                if isinstance(i, int) and not isinstance(i, bool)
            ),
        )
        for slot in _items(raw, where)
        if isinstance(slot, Mapping)
    )


def _parse_graph(raw: Mapping[str, Any], where: str) -> UIGraph:
    nodes_raw = raw.get("nodes")
    if not isinstance(nodes_raw, list):
        raise UIFormatError(f"{where}: 'nodes' must be a list")
    nodes = tuple(_parse_node(n, f"{where} nodes[{i}]") for i, n in enumerate(nodes_raw))
    links: dict[int, UILink] = {}
    for i, raw_link in enumerate(_items(raw.get("links"), f"{where} links")):
        if raw_link is None:  # litegraph leaves holes behind deleted links in some versions
            continue
        link = _parse_link(raw_link, f"{where} links[{i}]")
        links[link.id] = link
    by_id: dict[int | str, UINode] = {}
    for node in nodes:
        if node.id in by_id:
            raise UIFormatError(f"{where}: two nodes have id {node.id}")
        by_id[node.id] = node
    return UIGraph(
        nodes=nodes,
        links=links,
        id=str(raw.get("id", "")),
        name=str(raw.get("name", "")),
        inputs=_parse_slots(raw.get("inputs"), f"{where} inputs"),
        outputs=_parse_slots(raw.get("outputs"), f"{where} outputs"),
        _by_id=by_id,
    )


def _collect_subgraphs(raw: Mapping[str, Any], into: dict[str, UIGraph]) -> None:
    definitions = raw.get("definitions")
    if not isinstance(definitions, Mapping):
        return
    for i, sub in enumerate(_items(definitions.get("subgraphs"), "definitions.subgraphs")):
        if not isinstance(sub, Mapping) or not isinstance(sub.get("id"), str):
            raise UIFormatError(f"definitions.subgraphs[{i}]: a subgraph needs a string id")
        if sub["id"] not in into:
            into[sub["id"]] = _parse_graph(sub, f"subgraph {sub.get('name') or sub['id']!r}")
            _collect_subgraphs(sub, into)  # older exports nest definitions inside a definition


def parse_ui_workflow(document: Any) -> UIWorkflow:
    """Read a UI workflow; raises :class:`UIFormatError` when it is not one."""
    if not is_ui_workflow(document):
        raise UIFormatError("not a UI workflow: expected an object with a 'nodes' list")
    subgraphs: dict[str, UIGraph] = {}
    _collect_subgraphs(document, subgraphs)
    extra = document.get("extra")
    group_nodes = extra.get("groupNodes") if isinstance(extra, Mapping) else None
    return UIWorkflow(
        root=_parse_graph(document, "workflow"),
        subgraphs=subgraphs,
        group_nodes=dict(group_nodes) if isinstance(group_nodes, Mapping) else {},
    )
