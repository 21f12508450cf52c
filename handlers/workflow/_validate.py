"""Validate an API graph against an /object_info catalogue, in ComfyUI's own words (``execution.validate_prompt``).

Results are data, never exceptions: a :class:`ValidationReport` holds :class:`ValidationIssue` records that the
worker (checking against the live /object_info) and dispatch (against a bundled snapshot) report the same way, and
:meth:`ValidationReport.comfyui_body` renders them as the 400 body ComfyUI itself would send.

Like ComfyUI, only nodes that feed an output node are checked, values are coerced before bounds are compared
(``"16"`` is 16, ``16.7`` is 16 for an INT) and ``{"__value__": [...]}`` is unwrapped. Beyond ComfyUI, a few findings
are reported as warnings that do not make the graph invalid: unknown inputs (ComfyUI silently ignores them), values
off their widget's step (the frontend would have rounded them), and nodes that feed no output (never run).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from handlers.contract import JobError, comfyui_rejection_error
from handlers.workflow._catalogue import Catalogue, InputSpec, NodeClass
from handlers.workflow._training import DATASET_LOADERS

__all__ = ["ValidationIssue", "ValidationReport", "validate"]

Severity = Literal["error", "warning"]

# Issues about the prompt as a whole: ComfyUI answers with one of these and no node_errors.
PROMPT_LEVEL: Final = frozenset({"invalid_prompt", "prompt_no_outputs", "dependency_cycle"})
_COMBO_LIST_LIMIT: Final = 20  # ComfyUI prints the options only for lists up to this length
_UPLOAD_FLAGS: Final = ("image_upload", "video_upload", "audio_upload", "file_upload")


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One finding, shaped like an entry of ComfyUI's ``node_errors[id].errors`` plus where it is."""

    type: str  # ComfyUI's vocabulary: required_input_missing, value_not_in_list, return_type_mismatch, ...
    message: str
    details: str
    node_id: str | None = None
    class_type: str | None = None
    input: str | None = None
    extra_info: Mapping[str, Any] = field(default_factory=dict)  # exactly what ComfyUI puts there
    severity: Severity = "error"
    # Facts beyond ComfyUI's body, for people: allowed_values of a combo, a readable reason, the offending link.
    hints: Mapping[str, Any] = field(default_factory=dict)

    def as_comfyui(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "details": self.details,
            "extra_info": dict(self.extra_info),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "details": self.details,
            "node_id": self.node_id,
            "class_type": self.class_type,
            "input": self.input,
            "extra_info": dict(self.extra_info),
            "severity": self.severity,
            "hints": dict(self.hints),
        }

    def __str__(self) -> str:
        where = f"node {self.node_id} ({self.class_type})" if self.node_id is not None else "prompt"
        if self.input:
            where += f" input {self.input!r}"
        details = f": {self.details}" if self.details else ""
        return f"{self.severity}: {where}: {self.type}: {self.message}{details}"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    issues: tuple[ValidationIssue, ...]
    output_nodes: tuple[str, ...] = ()
    # For every checked node: the output nodes it feeds (ComfyUI's ``dependent_outputs``).
    dependents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def errors(self) -> tuple[ValidationIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[ValidationIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_job_error(self, job_id: str | None = None) -> JobError:
        """The report's errors as the :class:`JobError` ComfyUI's own 400 would have given (so a graph this check
        refuses reads the same as one ComfyUI refuses), plus the allowed values of long combo lists, which ComfyUI
        leaves out and a caller needs to fix the job. Dispatch and the worker both report through here."""
        error = comfyui_rejection_error(self.comfyui_body(), job_id=job_id)
        allowed = {
            (i.node_id, i.input): list(i.hints["allowed_values"])
            for i in self.errors
            if isinstance(i.hints.get("allowed_values"), list | tuple)
        }
        node_errors = [
            e.model_copy(update={"allowed": allowed[(e.node_id, e.input)]})
            if e.allowed is None and (e.node_id, e.input) in allowed
            else e
            for e in error.node_errors
        ]
        return error.model_copy(update={"node_errors": node_errors})

    def without(self, dropped: Collection[ValidationIssue]) -> ValidationReport:
        """The same report minus some issues (dispatch drops what its catalogue snapshot cannot judge)."""
        gone = {id(i) for i in dropped}
        return replace(self, issues=tuple(i for i in self.issues if id(i) not in gone))

    def comfyui_body(self) -> dict[str, Any]:
        """The body ComfyUI answers ``POST /prompt`` with for these errors (``{"error", "node_errors"}``).

        ComfyUI itself answers 200 and runs the valid outputs when only some outputs fail; this renders the
        failures either way.
        """
        prompt_level = next((i for i in self.errors if i.type in PROMPT_LEVEL), None)
        if prompt_level is not None:
            return {"error": {**prompt_level.as_comfyui(), "extra_info": {}}, "node_errors": {}}
        node_errors: dict[str, dict[str, Any]] = {}
        for issue in self.errors:
            node_id = issue.node_id or ""
            entry = node_errors.setdefault(
                node_id,
                {
                    "errors": [],
                    "dependent_outputs": list(self.dependents.get(node_id, ())),
                    "class_type": issue.class_type,
                },
            )
            entry["errors"].append(issue.as_comfyui())
        own = [f"{i.message}: {i.details}" for i in self.errors if i.node_id in self.output_nodes]
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "\n".join(own),
            "extra_info": {},
        }
        return {"error": error, "node_errors": node_errors}


def _input_config(spec: InputSpec) -> list[Any]:
    raw = spec.raw
    if isinstance(raw, list | tuple) and raw:
        return [raw[0], raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}]
    return [raw, {}]


def _types_compatible(received: str, wanted: str) -> bool:
    """ComfyUI's ``validate_node_input`` (non-strict): equal, or sharing one of their comma-separated types; ``*``
    (ComfyUI's AnyType) matches everything."""
    if received == wanted or "*" in (received, wanted):
        return True
    left = {t.strip() for t in received.split(",")}
    right = {t.strip() for t in wanted.split(",")}
    return "*" in left or "*" in right or bool(left & right)


def _is_link(value: Any) -> bool:
    return isinstance(value, list)


class _Validator:
    def __init__(self, graph: Any, catalogue: Catalogue, *, check_upload_combos: bool) -> None:
        self._graph = graph
        self._catalogue = catalogue
        self._check_uploads = check_upload_combos
        self._issues: list[ValidationIssue] = []

    def run(self) -> ValidationReport:
        if not isinstance(self._graph, Mapping):
            issue = ValidationIssue("invalid_prompt", "Prompt is not an object of nodes", type(self._graph).__name__)
            return ValidationReport((issue,))
        classes = self._classes()
        outputs = tuple(node_id for node_id, cls in classes.items() if cls is not None and cls.output_node)
        if classes and all(cls is not None for cls in classes.values()) and not outputs:
            self._issues.append(ValidationIssue("prompt_no_outputs", "Prompt has no outputs", ""))
        dependents = self._dependents(outputs)
        self._check_cycles()
        for node_id, cls in classes.items():
            if cls is None:
                continue
            if node_id in dependents:
                self._check_node(node_id, self._graph[node_id], cls)
            elif outputs:
                self._warn_unused(node_id, cls)
        return ValidationReport(tuple(self._issues), outputs, dependents)

    # -- prompt level ---------------------------------------------------------------------------------------------

    def _classes(self) -> dict[str, NodeClass | None]:
        classes: dict[str, NodeClass | None] = {}
        for node_id, node in self._graph.items():
            class_type = node.get("class_type") if isinstance(node, Mapping) else None
            if not isinstance(class_type, str):
                self._issues.append(
                    ValidationIssue(
                        "invalid_prompt",
                        "Cannot execute because a node is missing the class_type property.",
                        f"Node ID '#{node_id}'",
                        node_id=str(node_id),
                    )
                )
                classes[str(node_id)] = None
            elif class_type not in self._catalogue:
                self._issues.append(
                    ValidationIssue(
                        "invalid_prompt",
                        f"Cannot execute because node {class_type} does not exist.",
                        f"Node ID '#{node_id}'",
                        node_id=str(node_id),
                        class_type=class_type,
                    )
                )
                classes[str(node_id)] = None
            else:
                classes[str(node_id)] = self._catalogue[class_type]
        return classes

    def _upstream(self, node_id: str) -> Iterable[str]:
        node = self._graph.get(node_id)
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            return ()
        return [
            v[0]
            for v in inputs.values()
            if _is_link(v) and len(v) == 2 and isinstance(v[0], str) and v[0] in self._graph
        ]

    def _dependents(self, outputs: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        feeds: dict[str, list[str]] = {}
        for output in outputs:
            stack, seen = [output], {output}
            while stack:
                current = stack.pop()
                feeds.setdefault(current, []).append(output)
                for parent in self._upstream(current):
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
        return {node_id: tuple(deps) for node_id, deps in feeds.items()}

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for start in self._graph:
            if state.get(start):
                continue
            path: list[str] = []
            stack: list[tuple[str, Iterable[str]]] = [(start, iter(self._upstream(start)))]
            state[start] = 1
            path.append(start)
            while stack:
                node_id, parents = stack[-1]
                parent = next(iter(parents), None)
                if parent is None:
                    stack.pop()
                    path.pop()
                    state[node_id] = 2
                    continue
                if state.get(parent) == 1:
                    cycle = [*path[path.index(parent) :], parent]
                    self._issues.append(
                        ValidationIssue(
                            "dependency_cycle",
                            "Dependency cycle detected",
                            " -> ".join(cycle),
                            node_id=parent,
                            extra_info={"cycle": cycle},
                        )
                    )
                    return
                if not state.get(parent):
                    state[parent] = 1
                    path.append(parent)
                    stack.append((parent, iter(self._upstream(parent))))

    def _warn_unused(self, node_id: str, cls: NodeClass) -> None:
        self._issues.append(
            ValidationIssue(
                "node_not_executed",
                "Node feeds no output node, so ComfyUI will not run it",
                "",
                node_id=node_id,
                class_type=cls.name,
                severity="warning",
            )
        )

    # -- one node -------------------------------------------------------------------------------------------------

    def _issue(self, at: _At, kind: str, message: str, details: str, **extra: Any) -> None:
        """Record an issue on one input; ``hints`` and ``severity`` in ``extra`` are ours, the rest is ComfyUI's."""
        severity: Severity = extra.pop("severity", "error")
        hints: Mapping[str, Any] = extra.pop("hints", {})
        self._issues.append(
            ValidationIssue(
                kind,
                message,
                details,
                node_id=at.node_id,
                class_type=at.cls.name,
                input=at.name,
                # ComfyUI's exception entries carry no input name.
                extra_info=extra if kind.startswith("exception") else {"input_name": at.name, **extra},
                severity=severity,
                hints=hints,
            )
        )

    def _check_node(self, node_id: str, node: Mapping[str, Any], cls: NodeClass) -> None:
        inputs = node.get("inputs", {})
        if not isinstance(inputs, Mapping):
            self._issues.append(
                ValidationIssue(
                    "invalid_prompt", "Node inputs must be an object", f"Node ID '#{node_id}'", node_id, cls.name
                )
            )
            return
        for spec in cls.inputs_in("required", "optional"):
            if spec.name not in inputs:
                if spec.section == "required":
                    self._issue(
                        _At(node_id, cls, spec.name), "required_input_missing", "Required input is missing", spec.name
                    )
                continue
            value = inputs[spec.name]
            if _is_link(value):
                self._check_link(node_id, cls, spec, value)
            else:
                self._check_value(node_id, cls, spec, value)
        for name in inputs:
            declared = cls.input(name)
            if declared is None or declared.section == "hidden":
                self._issue(
                    _At(node_id, cls, name),
                    "unknown_input",
                    "Input is not declared by the node class; ComfyUI ignores it",
                    str(name),
                    received_value=inputs[name],
                    severity="warning",
                )

    def _check_link(self, node_id: str, cls: NodeClass, spec: InputSpec, value: list[Any]) -> None:
        config = _input_config(spec)
        if len(value) != 2:
            self._issue(
                _At(node_id, cls, spec.name),
                "bad_linked_input",
                "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                spec.name,
                input_config=config,
                received_value=value,
            )
            return
        source_id, slot = value
        source = self._graph.get(source_id) if isinstance(source_id, str) else None
        if source is None:
            # ComfyUI looks the id up as given and fails with a KeyError (an int id never matches: transcript 91).
            self._issue(
                _At(node_id, cls, spec.name),
                "exception_during_validation",
                "Exception when validating node",
                str(source_id) if not isinstance(source_id, str) else repr(source_id),
                exception_type="KeyError",
                traceback=[],
                hints={
                    "reason": f"input {spec.name!r} links to node {source_id!r}, which is not in the prompt"
                    + (" (link node ids must be strings)" if not isinstance(source_id, str) else ""),
                    "linked_node": value,
                },
            )
            return
        source_type = source.get("class_type") if isinstance(source, Mapping) else None
        if not isinstance(source_type, str) or source_type not in self._catalogue:
            return  # reported at prompt level
        source_cls = self._catalogue[source_type]
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < len(source_cls.output_types):
            self._issue(
                _At(node_id, cls, spec.name),
                "exception_during_validation",
                "Exception when validating node",
                "tuple index out of range" if isinstance(slot, int) else "tuple indices must be integers or slices",
                exception_type="IndexError" if isinstance(slot, int) else "TypeError",
                traceback=[],
                hints={
                    "reason": f"input {spec.name!r} links to output {slot!r} of node {source_id} ({source_type}), "
                    f"which has {len(source_cls.output_types)} output(s)",
                    "linked_node": value,
                },
            )
            return
        received = source_cls.output_types[slot]
        if not _types_compatible(received, spec.type):
            self._issue(
                _At(node_id, cls, spec.name),
                "return_type_mismatch",
                "Return type mismatch between linked nodes",
                f"{spec.name}, received_type({received}) mismatch input_type({spec.type})",
                input_config=config,
                received_type=received,
                linked_node=value,
            )

    def _check_value(self, node_id: str, cls: NodeClass, spec: InputSpec, value: Any) -> None:
        config = _input_config(spec)
        if isinstance(value, Mapping) and "__value__" in value:
            value = value["__value__"]
        converted = self._convert(node_id, cls, spec, value)
        if converted is _FAILED:
            return
        value = converted
        if spec.type in ("INT", "FLOAT") and isinstance(value, int | float):
            low, high = spec.minimum, spec.maximum
            if low is not None and value < low:
                self._issue(
                    _At(node_id, cls, spec.name),
                    "value_smaller_than_min",
                    f"Value {value} smaller than min of {low}",
                    spec.name,
                    input_config=config,
                    received_value=value,
                )
            if high is not None and value > high:
                self._issue(
                    _At(node_id, cls, spec.name),
                    "value_bigger_than_max",
                    f"Value {value} bigger than max of {high}",
                    spec.name,
                    input_config=config,
                    received_value=value,
                )
            self._check_step(node_id, cls, spec, value, config)
        upload = next((flag for flag in _UPLOAD_FLAGS if spec.config.get(flag)), None)
        if upload is None and cls.name in DATASET_LOADERS and spec.name == "folder":
            upload = "folder_upload"  # an input subfolder: a job's dataset is staged there after validation
        if spec.is_combo and upload is None:
            self._check_combo(node_id, cls, spec, value)
        elif spec.is_combo and upload is not None and self._check_uploads and value not in (spec.options or ()):
            # Upload combos are checked by the node's own VALIDATE_INPUTS (the file must exist), not the list.
            kind = upload.split("_", 1)[0]
            self._issue(
                _At(node_id, cls, spec.name),
                "custom_validation_failed",
                "Custom validation failed for node",
                f"{spec.name} - Invalid {kind} file: {value}",
                hints={"allowed_values": list(spec.options or ())},
            )

    def _convert(self, node_id: str, cls: NodeClass, spec: InputSpec, value: Any) -> Any:
        converters: dict[str, Any] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
        convert = converters.get(spec.type)
        if convert is None:
            return value
        try:
            return convert(value)
        except (TypeError, ValueError, OverflowError) as exc:
            self._issue(
                _At(node_id, cls, spec.name),
                "invalid_input_type",
                f"Failed to convert an input value to a {spec.type} value",
                f"{spec.name}, {value}, {exc}",
                input_config=_input_config(spec),
                received_value=value,
                exception_message=str(exc),
            )
            return _FAILED

    def _check_step(self, node_id: str, cls: NodeClass, spec: InputSpec, value: float, config: list[Any]) -> None:
        # The frontend snaps INT widgets to their step; a hand-written graph may not be. ComfyUI does not check.
        # (FLOAT widgets round to a precision instead, so a FLOAT off its step is normal.)
        step = spec.step
        if spec.type != "INT" or step is None or step == 1 or not isinstance(value, int):
            return
        low = spec.minimum
        bases = [0] if low is None or not math.isfinite(low) else [0, low]
        if all(not math.isclose((value - base) / step, round((value - base) / step)) for base in bases):
            self._issue(
                _At(node_id, cls, spec.name),
                "value_not_multiple_of_step",
                f"Value {value} is not a multiple of the step {step}",
                spec.name,
                input_config=config,
                received_value=value,
                severity="warning",
            )

    def _check_combo(self, node_id: str, cls: NodeClass, spec: InputSpec, value: Any) -> None:
        options = list(spec.options or ())
        if spec.config.get("multiselect") and isinstance(value, list):
            bad = [v for v in value if v not in options]
        else:
            bad = [] if value in options else [value]
        if not bad:
            return
        shown = f"(list of length {len(options)})" if len(options) > _COMBO_LIST_LIMIT else str(options)
        received = bad if isinstance(value, list) else value
        self._issue(
            _At(node_id, cls, spec.name),
            "value_not_in_list",
            "Value not in list",
            f"{spec.name}: '{received}' not in {shown}",
            input_config=None if len(options) > _COMBO_LIST_LIMIT else _input_config(spec),
            received_value=value,
            hints={"allowed_values": options},
        )


_FAILED: Final = object()


@dataclass(frozen=True, slots=True)
class _At:
    node_id: str
    cls: NodeClass
    name: str


def validate(
    graph: Any, catalogue: Catalogue | Mapping[str, Any], *, check_upload_combos: bool = False
) -> ValidationReport:
    """Check an API graph against ``catalogue`` (an /object_info dict or a :class:`Catalogue`).

    ``check_upload_combos``: also require LoadImage-style upload combos to name a listed file. Off by default:
    ComfyUI checks those against the input folder instead, and a job's media is staged after validation.
    """
    cat = catalogue if isinstance(catalogue, Catalogue) else Catalogue(catalogue)
    return _Validator(graph, cat, check_upload_combos=check_upload_combos).run()
