"""The prompt as a graph: links, cache keys, and the order ComfyUI runs nodes in.

``ExecutionPlan`` reproduces the observable order of ComfyUI's ``ExecutionList``: the nodes needed by each output
are collected depth-first (outputs in the given order, inputs in prompt order, a stack), cached nodes are left out
unless they are outputs themselves, and among the nodes whose inputs are ready the pick prefers an output node,
then a node feeding an output, then a node two steps from an output, then the first one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ExecutionPlan", "is_link", "node_signatures"]


def is_link(value: Any) -> bool:
    """``[source_id: str, slot: int]``: what ComfyUI treats as a link (other lists are values)."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int | float)
        and not isinstance(value[1], bool)
    )


def node_signatures(prompt: Mapping[str, Any], fingerprints: Mapping[str, str]) -> dict[str, str]:
    """A cache key per node: its class, fingerprint, every input, and the keys of the nodes it reads from.

    Two nodes with equal keys compute the same thing, so a key found in the cache means the node need not run
    (ComfyUI's CLASSIC cache with ``CacheKeySetInputSignature``).
    """
    keys: dict[str, str] = {}
    visiting: set[str] = set()

    def key(node_id: str) -> str:
        if node_id in keys:
            return keys[node_id]
        if node_id in visiting or node_id not in prompt:
            # A cycle or a dangling link: such a node never runs from the cache, give it a key of its own.
            return "unresolvable:" + node_id
        visiting.add(node_id)
        node = prompt[node_id]
        inputs = node.get("inputs") or {}
        parts: list[Any] = [node.get("class_type"), fingerprints.get(node_id, "")]
        for name in sorted(inputs):
            value = inputs[name]
            if is_link(value):
                parts.append([name, "link", key(value[0]), value[1]])
            else:
                parts.append([name, "value", value])
        text = json.dumps(parts, sort_keys=True, default=repr)
        keys[node_id] = hashlib.sha256(text.encode()).hexdigest()
        visiting.discard(node_id)
        return keys[node_id]

    for node_id in prompt:
        key(node_id)
    return keys


class ExecutionPlan:
    """Which node to run next. ``pick()`` stages one; ``done(node_id)`` releases the nodes it was blocking."""

    def __init__(
        self,
        prompt: Mapping[str, Any],
        outputs: list[str],
        is_cached: Callable[[str], bool],
        is_output: Callable[[str], bool],
    ) -> None:
        self._prompt = prompt
        self._is_cached = is_cached
        self._is_output = is_output
        self._pending: dict[str, None] = {}
        self._blockers: dict[str, set[str]] = {}
        self._blocking: dict[str, dict[str, None]] = {}
        for output in outputs:
            self._add(output)

    def _add(self, root: str) -> None:
        stack = [root]
        links: list[tuple[str, str]] = []
        while stack:
            node_id = stack.pop()
            if node_id in self._pending:
                continue
            self._pending[node_id] = None
            self._blockers[node_id] = set()
            self._blocking[node_id] = {}
            for value in (self._prompt[node_id].get("inputs") or {}).values():
                if is_link(value):
                    source = value[0]
                    if not self._is_cached(source):
                        stack.append(source)
                    links.append((source, node_id))
        for source, target in links:
            if not self._is_cached(source) or source in self._pending:
                self._add(source)
                self._blocking[source][target] = None
                self._blockers[target].add(source)

    def empty(self) -> bool:
        return not self._pending

    def pick(self) -> str | None:
        """The next node to run, or None if nothing is ready (a cycle)."""
        ready = [n for n in self._pending if not self._blockers[n]]
        if not ready:
            return None
        for node_id in ready:
            if self._is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self._is_output(b) for b in self._blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self._blocking[node_id]:
                if blocked in self._pending and any(self._is_output(b) for b in self._blocking[blocked]):
                    return node_id
        return ready[0]

    def pending(self) -> list[str]:
        return list(self._pending)

    def done(self, node_id: str) -> None:
        del self._pending[node_id]
        for blocker in self._blockers.pop(node_id):
            self._blocking.get(blocker, {}).pop(node_id, None)
        for blocked in self._blocking.pop(node_id):
            self._blockers[blocked].discard(node_id)
