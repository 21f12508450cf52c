"""``output.name`` against the bound workflow: which fields exist, whether the outputs could collide, and the key
each output gets. The pattern's own syntax is the contract's (:class:`handlers.contract.NamePattern`).

A field is a built-in (``{job_id}``, ``{node}``, ``{index}``, ``{ext}``, ``{variation}``), a ``labels`` entry, or a
parameter as bound (template defaults and random seeds included); ``{seed}`` and ``{prompt}`` are the output's own
variation's in a batch. Built-ins win over labels, labels over parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import JsonValue

from handlers.contract import BUILTIN_NAME_FIELDS, NamePattern, Problem
from handlers.workflow._binding import BindingError, BoundWorkflow
from handlers.workflow._edits import IMAGE_LATENT_CLASSES

__all__ = ["OutputNamer", "output_name_problems", "output_namer"]

_PATH: Final = "input.output.name"
#: Fields that can tell the outputs of two nodes apart.
_PER_NODE: Final = frozenset({"node", "variation", "seed", "prompt"})
_VARIATION_FIELDS: Final = frozenset({"seed", "prompt"})


def _scalar(value: JsonValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _known(bound: BoundWorkflow, labels: Mapping[str, str]) -> tuple[set[str], set[str]]:
    """(fields with a value, parameters that exist but are not text or numbers)."""
    fields = set(BUILTIN_NAME_FIELDS) | set(labels)
    unusable: set[str] = set()
    for name, value in bound.params.items():
        (fields if _scalar(value) is not None else unusable).add(name)
    if bound.variations:
        fields |= {f for f in _VARIATION_FIELDS if any(getattr(v, f) is not None for v in bound.variations)}
    return fields, unusable - fields


def _published_nodes(graph: Mapping[str, Any], output_nodes: Sequence[str], include_temp: bool) -> list[str]:
    """Output nodes whose files are returned (previews write temp files, returned only with include_temp)."""
    return [
        node_id
        for node_id in output_nodes
        if include_temp or not str((graph.get(node_id) or {}).get("class_type", "")).startswith("Preview")
    ]


def _node_values(bound: BoundWorkflow, node_id: str, used: set[str]) -> tuple[Any, ...]:
    """What the node-dependent fields of a pattern render to for ``node_id``'s outputs."""
    variation = bound.variation(node_id)
    values: list[Any] = []
    for name in sorted(used & _PER_NODE):
        if name == "node":
            values.append(node_id)
        elif name == "variation":
            values.append(variation.index if variation else 0)
        elif variation is not None and getattr(variation, name) is not None:
            values.append(getattr(variation, name))
        else:
            values.append(bound.params.get(name))
    return tuple(values)


def _batched(graph: Mapping[str, Any]) -> bool:
    for node in graph.values():
        if isinstance(node, Mapping) and node.get("class_type") in IMAGE_LATENT_CLASSES:
            size = (node.get("inputs") or {}).get("batch_size")
            if isinstance(size, int) and not isinstance(size, bool) and size > 1:
                return True
    return False


def output_name_problems(
    pattern: NamePattern,
    bound: BoundWorkflow,
    *,
    labels: Mapping[str, str],
    output_nodes: Sequence[str],
    include_temp: bool = False,
) -> list[Problem]:
    """Every problem with ``pattern`` that is known before the prompt runs: fields nothing fills, and outputs
    that would certainly get the same key (several output nodes and no ``{node}``/``{variation}``/``{seed}``/
    ``{prompt}``; a batch of images and no ``{index}``). Collisions this cannot see are caught at upload."""
    problems: list[Problem] = []
    fields, unusable = _known(bound, labels)
    for name in pattern.fields:
        if name in unusable:
            problems.append(Problem(path=_PATH, message=f"{{{name}}}: parameter {name!r} is not a text or number"))
        elif name not in fields:
            have = ", ".join(sorted(fields - BUILTIN_NAME_FIELDS)) or "none"
            message = (
                f"{{{name}}} is not a label, a parameter or a built-in field "
                f"(labels and parameters: {have}; built-ins: {', '.join(sorted(BUILTIN_NAME_FIELDS))})"
            )
            problems.append(Problem(path=_PATH, message=message))
    used = set(pattern.fields)
    nodes = _published_nodes(bound.graph, output_nodes, include_temp)
    seen: dict[tuple[Any, ...], str] = {}
    for node_id in nodes:
        other = seen.setdefault(_node_values(bound, node_id, used), node_id)
        if other != node_id:
            message = f"names the outputs of nodes {other} and {node_id} alike: add {{node}} or {{variation}}"
            problems.append(Problem(path=_PATH, message=message))
            break
    if "index" not in used and _batched(bound.graph):
        problems.append(Problem(path=_PATH, message="names a batch of images alike: add {index}"))
    return problems


@dataclass(frozen=True)
class OutputNamer:
    """The key (relative to the store's prefix) of each output of one job."""

    pattern: NamePattern
    job_id: str
    bound: BoundWorkflow
    labels: Mapping[str, str] = field(default_factory=dict)

    def key(self, node_id: str, index: int, ext: str) -> str:
        values: dict[str, str] = {}
        for name, value in self.bound.params.items():
            text = _scalar(value)
            if text is not None:
                values[name] = text
        values.update(self.labels)
        variation = self.bound.variation(node_id)
        if variation is not None:
            values["variation"] = str(variation.index)
            if variation.seed is not None:
                values["seed"] = str(variation.seed)
            if variation.prompt is not None:
                values["prompt"] = variation.prompt
        else:
            values["variation"] = "0"
        values.update(job_id=self.job_id, node=node_id, index=str(index), ext=ext)
        return self.pattern.render(values)


def output_namer(
    pattern: str | None,
    bound: BoundWorkflow,
    *,
    job_id: str,
    labels: Mapping[str, str],
    output_nodes: Sequence[str],
    include_temp: bool = False,
) -> OutputNamer | None:
    """The job's :class:`OutputNamer` (``None`` without ``output.name``); :class:`BindingError` (``invalid_input``)
    listing every problem :func:`output_name_problems` finds."""
    if pattern is None:
        return None
    parsed = NamePattern.parse(pattern)
    problems = output_name_problems(parsed, bound, labels=labels, output_nodes=output_nodes, include_temp=include_temp)
    if problems:
        raise BindingError(problems)
    return OutputNamer(parsed, job_id, bound, dict(labels))
