"""UI workflow -> API graph, as ComfyUI's frontend (``graphToPrompt``, 1.27) builds it, given an /object_info catalogue.

The walk is: every executable node of every graph level is emitted with its widget values (mapped by the class's
``input_order``), then each linked input is resolved to the node that really produces the value. Resolution walks
through Reroutes, bypassed nodes (by type), subgraph boundaries and legacy group nodes, and turns a PrimitiveNode
into the value it holds. Inner nodes of subgraphs and group nodes get colon-joined ids (``"5:12"``, ``"5:12:3"``).

A link can resolve four ways, and the difference matters for widget inputs: to an output (write the link), to a
value (write the value), to a muted node (the frontend writes the link, then deletes every input that points at a
node it did not emit: the input disappears), or to nothing at all (no input is written, so the widget's stale value
stays).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from handlers.contract import ErrorCode, JobError
from handlers.workflow._catalogue import Catalogue, InputSpec, NodeClass
from handlers.workflow._dynamic_prompt import resolve_dynamic_prompt
from handlers.workflow._ui_model import (
    SUBGRAPH_INPUT_ID,
    SUBGRAPH_OUTPUT_ID,
    UIFormatError,
    UIGraph,
    UIInput,
    UILink,
    UINode,
    UISlot,
    UIWorkflow,
    parse_ui_workflow,
)

__all__ = ["ConversionError", "ui_to_api", "ui_to_api_partial"]

MODE_NEVER: Final = 2  # muted: not emitted; inputs fed by it disappear
MODE_BYPASS: Final = 4  # not emitted; consumers are fed by one of its inputs of the same type

# Nodes that exist only on the canvas. PrimitiveNode and Reroute matter through links; the others are just dropped.
_PRIMITIVE: Final = "PrimitiveNode"
_REROUTE: Final = "Reroute"
_CANVAS_ONLY: Final = frozenset({"Note", "MarkdownNote", _PRIMITIVE, _REROUTE})
_GROUP_PREFIXES: Final = ("workflow>", "workflow/")
_CONTROL_VALUES: Final = frozenset({"fixed", "increment", "decrement", "randomize"})


class ConversionError(ValueError):
    """A UI workflow that cannot be converted; names the node (id, type, title) and the reason."""

    code = ErrorCode.WORKFLOW_INVALID
    retryable = False

    def __init__(
        self, reason: str, *, node_id: str | None = None, node_type: str | None = None, title: str | None = None
    ) -> None:
        self.reason = reason
        self.node_id = node_id
        self.node_type = node_type
        self.title = title
        where = ""
        if node_id is not None:
            label = f", {title!r}" if title and title != node_type else ""
            where = f"node {node_id} ({node_type}{label}): "
        super().__init__(where + reason)

    def to_job_error(self, job_id: str | None = None) -> JobError:
        return JobError(code=self.code, message=f"cannot convert the UI workflow: {self}", job_id=job_id)


@dataclass(frozen=True, slots=True)
class _Ref:
    node_id: str
    slot: int


@dataclass(frozen=True, slots=True)
class _Value:
    value: Any
    promoted: bool = False  # a subgraph node's widget value: sent as it is, never through serializeValue


class _Muted:
    """The link leads to a muted node: the input is deleted."""


_MUTED: Final = _Muted()
_Resolved = _Ref | _Value | _Muted | None  # None: unresolved, the widget value (if any) stays
_SeenKey = tuple[str, int | str, int]  # (scope prefix, node id, output slot)


@dataclass(slots=True)
class _Scope:
    """One graph level being emitted: the root, or the inside of one subgraph/group-node instance."""

    graph: UIGraph
    prefix: str  # "" at the root, "5:" inside instance 5, "5:12:" one level deeper
    parent: _Scope | None = None
    # For an instance's inside: what feeds its input slot i (a link in the parent scope), and promoted widget values.
    slot_inputs: Mapping[int, UIInput] = field(default_factory=dict)
    slot_values: Mapping[int, Any] = field(default_factory=dict)

    def exec_id(self, node: UINode) -> str:
        return f"{self.prefix}{node.id}"


def _types_compatible(a: str, b: str) -> bool:
    if a in ("*", "") or b in ("*", ""):
        return True
    left = {t.strip().upper() for t in a.split(",")}
    right = {t.strip().upper() for t in b.split(",")}
    return bool(left & right)


def _wrap(value: Any) -> Any:
    # A list value would read as a link: the backend unwraps {"__value__": [...]}.
    return {"__value__": value} if isinstance(value, list) else value


def _default(spec: InputSpec) -> Any:
    if "default" in spec.config:
        return spec.config["default"]
    if spec.options:
        return spec.options[0]
    return {"INT": 0, "FLOAT": 0.0, "BOOLEAN": False, "STRING": ""}.get(spec.type)


class _Converter:
    def __init__(self, workflow: UIWorkflow, catalogue: Catalogue, rng: random.Random, *, strict: bool) -> None:
        self._rng = rng
        self._workflow = workflow
        self._catalogue = catalogue
        self._strict = strict
        self._out: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, UIGraph] = {}

    # -- errors ---------------------------------------------------------------------------------------------------

    def _error(self, scope: _Scope, node: UINode, reason: str) -> ConversionError:
        return ConversionError(reason, node_id=scope.exec_id(node), node_type=node.type, title=node.title)

    # -- emission -------------------------------------------------------------------------------------------------

    def run(self) -> dict[str, dict[str, Any]]:
        self._emit(_Scope(graph=self._workflow.root, prefix=""), depth=0)
        return self._out

    def _emit(self, scope: _Scope, depth: int) -> None:
        if depth > 32:
            raise ConversionError(f"subgraphs nested deeper than 32 levels (inside {scope.prefix.rstrip(':')})")
        for node in scope.graph.nodes:
            if node.mode in (MODE_NEVER, MODE_BYPASS) or node.type in _CANVAS_ONLY:
                continue
            inner = self._instance_scope(scope, node)
            if inner is not None:
                self._emit(inner, depth + 1)
                continue
            if node.type in self._catalogue:
                self._out[scope.exec_id(node)] = self._api_node(scope, node, self._catalogue[node.type])
            elif self._strict:
                raise self._error(scope, node, f"node type {node.type!r} is not in the /object_info catalogue")
            else:
                self._out[scope.exec_id(node)] = self._api_node(scope, node, None)

    def _api_node(self, scope: _Scope, node: UINode, cls: NodeClass | None) -> dict[str, Any]:
        inputs = dict(self._widget_values(node, cls)) if cls is not None else {}
        links: set[str] = set()
        raw: set[str] = set()  # links and promoted subgraph values: never through serializeValue
        for slot in node.inputs:
            if slot.link is None:
                continue
            resolved = self._resolve_link(scope, slot.link, slot.type, set())
            if isinstance(resolved, _Ref):
                inputs[slot.name] = [resolved.node_id, resolved.slot]
                links.add(slot.name)
                raw.add(slot.name)
            elif isinstance(resolved, _Value):
                # A PrimitiveNode writes into the widget, which then serialises as usual.
                inputs[slot.name] = resolved.value
                links.discard(slot.name)
                if resolved.promoted:
                    raw.add(slot.name)
            elif isinstance(resolved, _Muted):
                inputs.pop(slot.name, None)
                links.discard(slot.name)
        if cls is not None:
            for name, value in inputs.items():
                spec = cls.input(name)
                if name not in raw and isinstance(value, str) and spec is not None and _is_dynamic(spec):
                    inputs[name] = resolve_dynamic_prompt(value, self._rng)
        title = node.title or (cls.display_name if cls is not None else node.type)
        return {
            "inputs": {name: value if name in links else _wrap(value) for name, value in inputs.items()},
            "class_type": node.type,
            "_meta": {"title": title},
        }

    # -- widget values --------------------------------------------------------------------------------------------

    def _widget_values(self, node: UINode, cls: NodeClass) -> dict[str, Any]:
        specs = cls.widget_inputs
        saved = node.widgets_values
        if isinstance(saved, dict):  # some nodes save a name -> value map
            return {spec.name: saved.get(spec.name, _default(spec)) for spec in specs}
        values = list(saved or [])
        values = self._drop_force_input_values(cls, values)
        result: dict[str, Any] = {}
        position = 0
        for spec in specs:
            if position >= len(values):
                # A widget added to the class after the workflow was saved: the frontend creates it with its default.
                result[spec.name] = _default(spec)
                continue
            result[spec.name] = values[position]
            position += 1
            if spec.has_control_after_generate:
                position += self._control_entries(values, position, spec)
            if spec.has_upload_widget and position < len(values) and _is_upload_value(values[position]):
                position += 1
            position += cls.saved_after(spec) - spec.unserialised_widgets  # extension buttons
        return result

    @staticmethod
    def _control_entries(values: list[Any], position: int, spec: InputSpec) -> int:
        """How many saved entries the control widget(s) after ``spec`` take (0 when the file predates them)."""
        if position >= len(values):
            return 0
        value = values[position]
        # Legacy files store the old "randomize after generate" checkbox as true/false.
        if not (value in _CONTROL_VALUES or isinstance(value, bool)):
            return 0
        if spec.type == "COMBO" and position + 1 < len(values) and isinstance(values[position + 1], str):
            return 2  # the combo's filter text follows its control
        return 1

    @staticmethod
    def _drop_force_input_values(node_class: NodeClass, values: list[Any]) -> list[Any]:
        # Files saved when forceInput inputs still had widgets hold a value for each; the frontend drops them when
        # the count matches that older layout exactly.
        forced = {s.name for s in node_class.inputs if s.section != "hidden" and s.config.get("forceInput")}
        if not forced:
            return values
        old_layout = [s for s in node_class.inputs if s.is_widget or s.name in forced]
        if len(values) != node_class.saved_widget_count + len(forced):
            return values
        kept: list[Any] = []
        position = 0
        for spec in old_layout:
            if spec.name in forced:
                position += 1
                continue
            width = 1 + node_class.saved_after(spec)
            kept.extend(values[position : position + width])
            position += width
        return kept

    # -- link resolution ------------------------------------------------------------------------------------------

    def _resolve_link(self, scope: _Scope, link_id: int, want: str, seen: set[_SeenKey]) -> _Resolved:
        """What feeds ``link_id``; ``want`` is the type of the input at the far end (it steers bypassing)."""
        link = scope.graph.links.get(link_id)
        if link is None:
            return None
        return self._resolve_output(scope, link.origin_id, link.origin_slot, want, seen)

    def _resolve_output(
        self, scope: _Scope, node_id: int | str, slot: int, want: str, seen: set[_SeenKey]
    ) -> _Resolved:
        key = (scope.prefix, node_id, slot)
        if key in seen:
            looping = scope.graph.node(node_id)
            reason = "its links loop back through reroute, bypassed or subgraph nodes"
            if looping is None:
                raise ConversionError(f"{reason} (at node {scope.prefix}{node_id})")
            raise self._error(scope, looping, reason)
        seen.add(key)
        if node_id == SUBGRAPH_INPUT_ID:
            return self._resolve_boundary_input(scope, slot, seen)
        node = scope.graph.node(node_id)
        if node is None:
            return None
        if node.mode == MODE_NEVER:
            return _MUTED
        if node.mode == MODE_BYPASS:
            return self._resolve_bypass(scope, node, slot, want, seen)
        if node.type == _PRIMITIVE:
            values = node.widgets_values
            if isinstance(values, list) and values:
                return _Value(values[0])
            return None
        if node.type == _REROUTE:
            source = node.inputs[0].link if node.inputs else None
            return None if source is None else self._resolve_link(scope, source, want, seen)
        inner = self._instance_scope(scope, node)
        if inner is not None:
            feed = self._output_feed(inner.graph, slot)
            if feed is None:
                return None
            return self._resolve_output(inner, feed.origin_id, feed.origin_slot, want, seen)
        return _Ref(scope.exec_id(node), slot)

    @staticmethod
    def _output_feed(graph: UIGraph, slot: int) -> UILink | None:
        """The link that feeds output ``slot`` of a subgraph: the first live one the definition lists."""
        if slot < len(graph.outputs):
            for link_id in graph.outputs[slot].link_ids:
                link = graph.links.get(link_id)
                if link is not None and link.target_id == SUBGRAPH_OUTPUT_ID:
                    return link
        return next(
            (k for k in graph.links.values() if k.target_id == SUBGRAPH_OUTPUT_ID and k.target_slot == slot), None
        )

    def _resolve_boundary_input(self, scope: _Scope, slot: int, seen: set[_SeenKey]) -> _Resolved:
        feed = scope.slot_inputs.get(slot)
        if feed is not None and feed.link is not None and scope.parent is not None:
            # Crossing the boundary restarts the type from the instance's own input (as the frontend does).
            return self._resolve_link(scope.parent, feed.link, feed.type, seen)
        if slot in scope.slot_values:
            return _Value(scope.slot_values[slot], promoted=True)
        return None

    @staticmethod
    def _bypass_input(node: UINode, slot: int, want: str) -> UIInput | None:
        """The input a bypassed node hands on for output ``slot`` to an input of type ``want``, if any: the same
        slot when its type suits both ends, else the first input of exactly ``want``, else the first that suits."""
        inputs = node.inputs
        if want in ("*", ""):
            return inputs[slot] if slot < len(inputs) else (inputs[0] if inputs else None)
        out_type = node.outputs[slot].type if slot < len(node.outputs) else "*"

        def suits(candidate: UIInput) -> bool:
            return _types_compatible(candidate.type, out_type) and _types_compatible(candidate.type, want)

        if slot < len(inputs) and suits(inputs[slot]):
            return inputs[slot]
        exact = next((i for i in inputs if i.type == want), None)
        return exact if exact is not None else next((i for i in inputs if suits(i)), None)

    def _resolve_bypass(self, scope: _Scope, node: UINode, slot: int, want: str, seen: set[_SeenKey]) -> _Resolved:
        chosen = self._bypass_input(node, slot, want)
        if chosen is None or chosen.link is None:
            return None
        return self._resolve_link(scope, chosen.link, want, seen)

    # -- subgraphs and legacy group nodes -------------------------------------------------------------------------

    def _instance_scope(self, scope: _Scope, node: UINode) -> _Scope | None:
        """The inside of ``node`` when it is a subgraph or legacy group-node instance, else None."""
        graph = self._workflow.subgraphs.get(node.type)
        if graph is not None:
            return self._subgraph_scope(scope, node, graph)
        if node.type.startswith(_GROUP_PREFIXES):
            return self._group_scope(scope, node)
        return None

    def _subgraph_scope(self, scope: _Scope, node: UINode, graph: UIGraph) -> _Scope:
        # Instance inputs are matched by name: on save the frontend drops unlinked widget sockets and renumbers.
        slot_inputs: dict[int, UIInput] = {}
        for index, sg_input in enumerate(graph.inputs):
            found = node.input_named(sg_input.name)
            if found is not None:
                slot_inputs[index] = found
        # The instance shows one widget per subgraph input that feeds a widget, in the definition's order; its saved
        # values follow that order (promoted widgets of inner nodes come after, and live in the inner nodes too).
        slot_values: dict[int, Any] = {}
        saved = node.widgets_values
        if isinstance(saved, list) and saved:
            widget_slots = [i for i in range(len(graph.inputs)) if self._feeds_widget(graph, i)]
            for position, index in enumerate(widget_slots):
                if position < len(saved):
                    slot_values[index] = saved[position]
        return _Scope(
            graph=graph,
            prefix=f"{scope.exec_id(node)}:",
            parent=scope,
            slot_inputs=slot_inputs,
            slot_values=slot_values,
        )

    @staticmethod
    def _feeds_widget(graph: UIGraph, index: int) -> bool:
        # The subgraph node promotes a widget for an input as soon as one of its links ends on a widget input.
        for link in graph.links.values():
            if link.origin_id != SUBGRAPH_INPUT_ID or link.origin_slot != index:
                continue
            target = graph.node(link.target_id)
            if (
                target is not None
                and link.target_slot < len(target.inputs)
                and target.inputs[link.target_slot].widget is not None
            ):
                return True
        return False

    def _group_scope(self, scope: _Scope, node: UINode) -> _Scope:
        name = node.type.split(">", 1)[1] if ">" in node.type else node.type.split("/", 1)[1]
        graph = self._groups.get(name)
        if graph is None:
            definition = self._workflow.group_nodes.get(name)
            if not isinstance(definition, Mapping):
                raise self._error(scope, node, f"group node definition {name!r} is missing from extra.groupNodes")
            try:
                graph = self._group_graph(name, definition)
            except UIFormatError as exc:
                raise self._error(scope, node, f"group node definition {name!r}: {exc}") from exc
            self._groups[name] = graph
        slot_inputs = {index: node.inputs[index] for index in range(min(len(graph.inputs), len(node.inputs)))}
        inner = _Scope(graph=graph, prefix=f"{scope.exec_id(node)}:", parent=scope, slot_inputs=slot_inputs)
        if isinstance(node.widgets_values, list):
            inner.graph = self._with_group_widget_values(graph, node.widgets_values)
        return inner

    def _group_graph(self, name: str, definition: Mapping[str, Any]) -> UIGraph:
        """A legacy group definition rewritten as a subgraph, as the frontend's GroupNodeConfig lays it out.

        Inner node i gets id i. The group's inputs are, in inner-node order, every socket not linked inside the
        group, then (after all nodes) every converted widget not linked inside; its outputs are every output not
        linked inside or marked external. ``config[i].input/output[...].visible`` overrides either.
        """
        raw_nodes = definition.get("nodes")
        if not isinstance(raw_nodes, list) or not all(isinstance(n, Mapping) for n in raw_nodes):
            raise UIFormatError("'nodes' must be a list of nodes")
        nodes = parse_ui_workflow({"nodes": [{**n, "id": i} for i, n in enumerate(raw_nodes)]}).root.nodes
        config = definition.get("config") if isinstance(definition.get("config"), Mapping) else {}

        def visible(index: int | str, kind: str, key: str | int) -> bool | None:
            entry = config.get(str(index)) if isinstance(config, Mapping) else None
            found = ((entry or {}).get(kind) or {}).get(str(key)) if isinstance(entry, Mapping) else None
            return found.get("visible") if isinstance(found, Mapping) else None

        links: dict[int, UILink] = {}
        for i, raw in enumerate(definition.get("links") or []):
            if not isinstance(raw, list) or len(raw) < 4 or raw[0] is None:
                continue  # links leaving the copied selection are saved with a null origin
            link_type = str(raw[5]) if len(raw) > 5 else "*"
            links[i + 1] = UILink(i + 1, int(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]), link_type)
        linked_in = {(k.target_id, k.target_slot): k.id for k in links.values()}
        linked_out = {(k.origin_id, k.origin_slot) for k in links.values()}
        external = {(int(e[0]), int(e[1])) for e in definition.get("external") or [] if isinstance(e, list)}
        boundary_in: list[UISlot] = []
        boundary_out: list[UISlot] = []
        feeds: dict[tuple[int | str, int], int] = {}

        def expose(node: UINode, slot_index: int, slot: UIInput) -> None:
            if (node.id, slot_index) in linked_in or visible(node.id, "input", slot.name) is False:
                return
            link = UILink(len(links) + 1, SUBGRAPH_INPUT_ID, len(boundary_in), node.id, slot_index, slot.type)
            links[link.id] = link
            feeds[(node.id, slot_index)] = link.id
            boundary_in.append(UISlot(slot.name, slot.type))

        for widgets_pass in (False, True):
            for node in nodes:
                for slot_index, slot in enumerate(node.inputs):
                    if (slot.widget is not None) is widgets_pass:
                        expose(node, slot_index, slot)
        for node in nodes:
            for slot_index, out in enumerate(node.outputs):
                shown = visible(node.id, "output", slot_index)
                if shown is None:
                    shown = (node.id, slot_index) not in linked_out or (node.id, slot_index) in external
                if shown:
                    link = UILink(len(links) + 1, node.id, slot_index, SUBGRAPH_OUTPUT_ID, len(boundary_out), out.type)
                    links[link.id] = link
                    boundary_out.append(UISlot(out.name, out.type))
        rebuilt = tuple(
            UINode(
                node.id,
                node.type,
                node.title,
                node.mode,
                tuple(
                    UIInput(slot.name, slot.type, linked_in.get((node.id, i), feeds.get((node.id, i))), slot.widget)
                    for i, slot in enumerate(node.inputs)
                ),
                node.outputs,
                node.widgets_values,
                {},
            )
            for node in nodes
        )
        return UIGraph(
            nodes=rebuilt,
            links=links,
            id=name,
            name=name,
            inputs=tuple(boundary_in),
            outputs=tuple(boundary_out),
            _by_id={n.id: n for n in rebuilt},
        )

    def _with_group_widget_values(self, graph: UIGraph, values: list[Any]) -> UIGraph:
        """The group instance saves its widgets in one list, inner node after inner node: slice it back. A widget
        converted to an input inside the group is an input of the group, not a widget: it keeps its own value."""
        rebuilt: list[UINode] = []
        position = 0
        for node in graph.nodes:
            own = list(node.widgets_values) if isinstance(node.widgets_values, list) else []
            if node.type in self._catalogue:
                cls = self._catalogue[node.type]
                converted = {slot.widget for slot in node.inputs if slot.widget is not None}
                merged: list[Any] = []
                for spec in cls.widget_inputs:
                    width = 1 + cls.saved_after(spec)
                    if spec.name in converted:
                        merged.extend(own[len(merged) : len(merged) + width])
                    else:
                        merged.extend(values[position : position + width])
                        position += width
                own = merged
            elif node.type == _PRIMITIVE:
                width = len(own)
                own = values[position : position + width]
                position += width
            rebuilt.append(
                UINode(node.id, node.type, node.title, node.mode, node.inputs, node.outputs, own, node.properties)
            )
        return UIGraph(
            nodes=tuple(rebuilt),
            links=graph.links,
            id=graph.id,
            name=graph.name,
            inputs=graph.inputs,
            outputs=graph.outputs,
            _by_id={n.id: n for n in rebuilt},
        )


def _is_dynamic(spec: InputSpec) -> bool:
    return spec.type == "STRING" and bool(spec.config.get("dynamicPrompts"))


def _is_upload_value(value: Any) -> bool:
    # The upload button saves its own name ("image", "video", ...) or nothing.
    return value is None or isinstance(value, str)


def ui_to_api(
    workflow: Mapping[str, Any],
    object_info: Catalogue | Mapping[str, Any],
    *,
    rng: random.Random | None = None,
    strict: bool = True,
) -> dict[str, dict[str, Any]]:
    """Convert a UI workflow to the API graph the frontend would queue, using ``object_info`` for widget layouts.

    Raises :class:`ConversionError` naming the node and the reason; a node type absent from the catalogue is
    reported, never guessed (``strict=False`` is for :func:`ui_to_api_partial` only). ``rng`` picks the options of
    dynamic prompts (``{a|b}``) as the frontend does at queue time; give a seeded one for a reproducible result.
    """
    catalogue = object_info if isinstance(object_info, Catalogue) else Catalogue(object_info)
    try:
        parsed = parse_ui_workflow(workflow)
    except UIFormatError as exc:
        raise ConversionError(str(exc)) from exc
    try:
        return _Converter(parsed, catalogue, rng or random.Random(), strict=strict).run()  # noqa: S311 (not crypto)
    except ConversionError:
        raise
    except RecursionError as exc:
        raise ConversionError("links nest too deeply to follow") from exc
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # The parsed model checks the common shapes; legacy parts (group nodes, widget values, subgraph boxes) are
        # read as the frontend saves them. Whatever else a hostile document holds there is the document's fault:
        # reported as a conversion error (never an internal one), since the corpus converts without it.
        raise ConversionError(f"the UI workflow is malformed ({type(exc).__name__}: {exc})") from exc


def ui_to_api_partial(
    workflow: Mapping[str, Any], object_info: Catalogue | Mapping[str, Any], *, rng: random.Random | None = None
) -> dict[str, dict[str, Any]]:
    """Like :func:`ui_to_api`, but a node of an unknown type is emitted with its links only, never its widgets.

    For comparing converters on workflows that use nodes a catalogue lacks; never queue the result.
    """
    return ui_to_api(workflow, object_info, rng=rng, strict=False)
