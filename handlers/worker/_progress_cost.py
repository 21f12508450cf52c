"""How much of a prompt's time each node is expected to take, so progress (and the ETA drawn from it) moves with
time rather than with node count. Pure: no I/O, no clock.

Without history a sampler costs one unit per step (on a GPU, sampling is nearly all of the time), a model loader
or a VAE pass a couple of units, anything else a fraction of one. Once a template has run on this worker, its
measured per-node times (``Timings.nodes_ms``) replace the guesses, as a moving average, so the second run's bar
is even where the first run's was only close.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["CostModel", "default_cost"]

#: Units per sampler step, and for the other kinds of node; only the ratios matter.
_STEP: Final = 1.0
_HEAVY: Final = 2.0  # loaders, VAE encode/decode, upscalers with a model
_LIGHT: Final = 0.25  # everything else: text encoders, image ops, saving
_HEAVY_MARKERS: Final = ("Loader", "VAEDecode", "VAEEncode", "Upscale", "Train")
#: Weight of the newest run in the moving average of measured times.
_LEARN_RATE: Final = 0.5
#: Templates remembered per worker (least recently run ones are forgotten first).
_MAX_TEMPLATES: Final = 256


def default_cost(node: Mapping[str, Any]) -> float:
    """A node's expected cost in units, from its class and inputs alone."""
    class_type = str(node.get("class_type", ""))
    inputs = node.get("inputs")
    steps = inputs.get("steps") if isinstance(inputs, Mapping) else None
    if isinstance(steps, int | float) and not isinstance(steps, bool) and steps > 0 and "Sampler" in class_type:
        return float(steps) * _STEP
    if "Sampler" in class_type:
        return 20 * _STEP  # custom samplers take their steps from a scheduler node: assume a common count
    if any(marker in class_type for marker in _HEAVY_MARKERS):
        return _HEAVY
    return _LIGHT


@dataclass
class CostModel:
    """Per-node weights for a graph; learns from finished runs of the same template (``key``)."""

    _learned: dict[str, dict[str, float]] = field(default_factory=dict)

    def weights(self, graph: Mapping[str, Any], key: str | None = None) -> dict[str, float]:
        """Node id -> expected cost. With history for ``key``, measured milliseconds (nodes never measured, e.g.
        always cached, get the median); else :func:`default_cost` units."""
        learned = self._learned.get(key) if key is not None else None
        nodes = {node_id: node for node_id, node in graph.items() if isinstance(node, Mapping)}
        if not learned:
            return {node_id: default_cost(node) for node_id, node in nodes.items()}
        fallback = statistics.median(learned.values())
        return {node_id: max(learned.get(node_id, fallback), 1.0) for node_id in nodes}

    def learn(self, key: str | None, nodes_ms: Mapping[str, int]) -> None:
        """Fold one successful run's per-node times into the template's history."""
        if key is None or not nodes_ms:
            return
        history = self._learned.pop(key, {})  # re-inserted last: the dict's order is recency
        for node_id, spent in nodes_ms.items():
            old = history.get(node_id)
            history[node_id] = float(spent) if old is None else (1 - _LEARN_RATE) * old + _LEARN_RATE * spent
        self._learned[key] = history
        while len(self._learned) > _MAX_TEMPLATES:
            del self._learned[next(iter(self._learned))]
