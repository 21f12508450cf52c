"""ComfyUI's ``validate_prompt``: the exact 400 bodies, partial success, and in-place value coercion.

Pure: a prompt, the node classes and the folders in; a :class:`Validation` out. The prompt is coerced in place
(``"16"`` becomes 16 for an INT, ``{"__value__": [...]}`` is unwrapped), as the real server does: the coerced prompt
is what the queue, the history and SaveImage's PNG chunks show. Pass a copy if the caller's must stay untouched.
Shapes that make the real server raise (a UI-format workflow, a prompt that is not an object) raise
:class:`PromptCrash`, which the server turns into ComfyUI's 500.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._node import Folders, Node

__all__ = ["PromptCrash", "Validation", "input_spec", "no_prompt_error", "validate_prompt"]

#: Above this many entries, ``value_not_in_list`` gives the length instead of the list (as ComfyUI does).
_MAX_LISTED_OPTIONS = 20

ValidatedNode = tuple[bool, list[dict[str, Any]], str]


class PromptCrash(Exception):
    """The real server would raise while validating this body: it answers HTTP 500."""


@dataclass(frozen=True)
class Validation:
    """``ok`` with the outputs to run (and ``node_errors`` of the outputs that failed), or the 400 ``error``."""

    ok: bool
    error: dict[str, Any] | None
    outputs: list[str]
    node_errors: dict[str, Any] = field(default_factory=dict)


def _error(kind: str, message: str, details: str, extra_info: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info or {}}


def no_prompt_error() -> dict[str, Any]:
    return _error("no_prompt", "No prompt provided", "No prompt provided")


def input_spec(cls: type[Node], folders: Folders, name: str) -> tuple[str | None, Any, dict[str, Any]]:
    """(category, input type, options) of one declared input; (None, None, {}) if the class has no such input."""
    declared = cls.input_types(folders)
    for category in ("required", "optional", "hidden"):
        section = declared.get(category) or {}
        if name in section:
            spec = section[name]
            if isinstance(spec, str):  # V1 hidden inputs are bare strings
                return category, spec, {}
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            return category, spec[0], options
    return None, None, {}


def _types_compatible(received: Any, expected: Any) -> bool:
    """ComfyUI's ``validate_node_input``: equal, a wildcard, or overlapping comma-separated unions."""
    if received == expected:
        return True
    if isinstance(received, list) or isinstance(expected, list):
        # A combo output feeding a combo input.
        return (isinstance(received, list) or received == "COMBO") and (
            isinstance(expected, list) or expected == "COMBO"
        )
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    if "*" in (received, expected):
        return True
    received_set = {t.strip() for t in received.split(",")}
    expected_set = {t.strip() for t in expected.split(",")}
    return bool(received_set & expected_set)


def _convert(type_input: Any, value: Any) -> Any:
    if type_input == "INT":
        return int(value)
    if type_input == "FLOAT":
        return float(value)
    if type_input == "STRING":
        return str(value)
    if type_input == "BOOLEAN":
        return bool(value)
    return value


def _custom_validated_inputs(cls: type[Node], names: list[str]) -> list[str]:
    """The inputs a node's own ``validate_inputs`` takes over from the range and list checks.

    ComfyUI skips min/max/combo checks for the arguments of ``VALIDATE_INPUTS``: here, the node's
    ``VALIDATED_INPUTS``. A node that overrides ``validate_inputs`` without naming them covers all its inputs.
    """
    if getattr(cls.validate_inputs, "__func__", None) is getattr(Node.validate_inputs, "__func__", None):
        return []
    named: frozenset[str] = getattr(cls, "VALIDATED_INPUTS", frozenset())
    return [n for n in names if n in named] if named else list(names)


class _Validator:
    def __init__(self, prompt: dict[Any, Any], node_classes: Mapping[str, type[Node]], folders: Folders) -> None:
        self.prompt = prompt
        self.node_classes = node_classes
        self.folders = folders
        self.validated: dict[Any, ValidatedNode] = {}

    def node(self, unique_id: Any) -> ValidatedNode:
        if unique_id in self.validated:
            return self.validated[unique_id]
        node = self.prompt[unique_id]
        inputs = node["inputs"]
        cls = self.node_classes[node["class_type"]]
        declared = cls.input_types(self.folders)
        names = [*(declared.get("required") or {}), *(declared.get("optional") or {})]
        custom = _custom_validated_inputs(cls, names)
        errors: list[dict[str, Any]] = []
        valid = True
        for name in names:
            category, type_input, options = input_spec(cls, self.folders, name)
            if name not in inputs:
                if category == "required":
                    errors.append(
                        _error("required_input_missing", "Required input is missing", name, {"input_name": name})
                    )
                continue
            value = inputs[name]
            info = [type_input, options]
            if isinstance(value, list):
                if not self.link(name, value, type_input=type_input, info=info, errors=errors):
                    valid = False
                continue
            error = self.constant(
                inputs, name, value, type_input=type_input, options=options, info=info, custom=name in custom
            )
            if error is not None:
                errors.append(error)
        if custom:
            errors.extend(self.custom(cls, inputs, custom))
        result: ValidatedNode = (not errors and valid, errors, unique_id)
        self.validated[unique_id] = result
        return result

    def link(
        self,
        name: str,
        value: list[Any],
        *,
        type_input: Any,
        info: list[Any],
        errors: list[dict[str, Any]],
    ) -> bool:
        """Check one linked input; False if the node it comes from failed (its errors are its own)."""
        if len(value) != 2:
            errors.append(
                _error(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name,
                    {"input_name": name, "input_config": info, "received_value": value},
                )
            )
            return True
        source_id = value[0]
        # Indexing exactly as the real server does, so a bad id or slot raises the same KeyError/IndexError.
        source_class = self.node_classes[self.prompt[source_id]["class_type"]]
        received_type = source_class.RETURN_TYPES[value[1]]
        if not _types_compatible(received_type, type_input):
            details = f"{name}, received_type({received_type}) mismatch input_type({type_input})"
            errors.append(
                _error(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    details,
                    {"input_name": name, "input_config": info, "received_type": received_type, "linked_node": value},
                )
            )
            return True
        try:
            return self.node(source_id)[0]
        except Exception as exc:
            self.validated[source_id] = (
                False,
                [
                    _error(
                        "exception_during_inner_validation",
                        "Exception when validating inner node",
                        str(exc),
                        {
                            "input_name": name,
                            "input_config": info,
                            "exception_message": str(exc),
                            "exception_type": _type_name(exc),
                            "traceback": traceback.format_tb(exc.__traceback__),
                            "linked_node": value,
                        },
                    )
                ],
                source_id,
            )
            return False

    @staticmethod
    def constant(
        inputs: dict[str, Any],
        name: str,
        value: Any,
        *,
        type_input: Any,
        options: dict[str, Any],
        info: list[Any],
        custom: bool,
    ) -> dict[str, Any] | None:
        try:
            if isinstance(value, dict) and "__value__" in value:
                value = value["__value__"]
                inputs[name] = value
            converted = _convert(type_input, value)
            if converted is not value:
                inputs[name] = value = converted
        except Exception as exc:
            return _error(
                "invalid_input_type",
                f"Failed to convert an input value to a {type_input} value",
                f"{name}, {value}, {exc}",
                {"input_name": name, "input_config": info, "received_value": value, "exception_message": str(exc)},
            )
        if custom:
            return None
        if "min" in options and value < options["min"]:
            return _error(
                "value_smaller_than_min",
                "Value {} smaller than min of {}".format(value, options["min"]),
                name,
                {"input_name": name, "input_config": info, "received_value": value},
            )
        if "max" in options and value > options["max"]:
            return _error(
                "value_bigger_than_max",
                "Value {} bigger than max of {}".format(value, options["max"]),
                name,
                {"input_name": name, "input_config": info, "received_value": value},
            )
        choices = type_input if isinstance(type_input, list) else None
        if type_input == "COMBO":
            choices = list(options.get("options", []))
        if choices is not None and value not in choices:
            config: list[Any] | None = info
            if len(choices) > _MAX_LISTED_OPTIONS:
                listed, config = f"(list of length {len(choices)})", None
            else:
                listed = str(choices)
            return _error(
                "value_not_in_list",
                "Value not in list",
                f"{name}: '{value}' not in {listed}",
                {"input_name": name, "input_config": config, "received_value": value},
            )
        return None

    def custom(self, cls: type[Node], inputs: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
        # Linked inputs have no value yet at validation time: the real server passes None for them.
        given = {n: (None if isinstance(inputs[n], list) else inputs[n]) for n in names if n in inputs}
        message = cls.validate_inputs(given, self.folders)
        if message is None:
            return []
        return [
            _error(
                "custom_validation_failed", "Custom validation failed for node", f"{n} - {message}", {"input_name": n}
            )
            for n in given
        ]


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def validate_prompt(
    prompt: Any,
    node_classes: Mapping[str, type[Node]],
    folders: Folders,
    partial_targets: Any = None,
) -> Validation:
    """Validate (and coerce, in place) an API-format prompt as ComfyUI 0.3.64 does."""
    if not isinstance(prompt, dict):
        raise PromptCrash(f"prompt must be an object, not {type(prompt).__name__}")
    outputs: list[Any] = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict | list | str):
            # ``'class_type' not in <int>`` is a TypeError on the real server: UI-format workflows end here.
            raise PromptCrash(f"argument of type '{type(node).__name__}' is not iterable")
        if "class_type" not in node:
            return Validation(
                False,
                _error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                ),
                [],
            )
        if not isinstance(node, dict):
            raise PromptCrash("a node must be an object")
        class_type = node["class_type"]
        if not isinstance(class_type, str):
            raise PromptCrash("class_type must be a string")
        cls = node_classes.get(class_type)
        if cls is None:
            return Validation(
                False,
                _error(
                    "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{node_id}'",
                ),
                [],
            )
        wanted = partial_targets is None or (isinstance(partial_targets, list) and node_id in partial_targets)
        if wanted and cls.OUTPUT_NODE is True:
            outputs.append(node_id)
    if not outputs:
        return Validation(False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [])

    validator = _Validator(prompt, node_classes, folders)
    good: list[str] = []
    failed: list[tuple[Any, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        try:
            valid, reasons, _ = validator.node(output)
        except Exception as exc:
            valid = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(exc),
                    {"exception_type": _type_name(exc), "traceback": traceback.format_tb(exc.__traceback__)},
                )
            ]
            validator.validated[output] = (False, reasons, output)
        if valid:
            good.append(output)
            continue
        failed.append((output, reasons))
        # As in ComfyUI, every failed node validated so far (not only this output's) lists this output as dependent.
        for node_id, (node_valid, node_reasons, _) in validator.validated.items():
            if node_valid or not node_reasons:
                continue
            if node_id not in node_errors:
                node_errors[node_id] = {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                }
            node_errors[node_id]["dependent_outputs"].append(output)

    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in failed for e in reasons)
        return Validation(
            False,
            _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
            [],
            node_errors,
        )
    return Validation(True, None, good, node_errors)
