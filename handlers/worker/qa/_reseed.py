"""New seeds for a QA retry: the same graph, every seed input given a fresh random value."""

from __future__ import annotations

import copy
import dataclasses
import random

from handlers.contract import SeedUsed
from handlers.workflow import BoundWorkflow

__all__ = ["reseeded"]

_SEED_MAX = 2**32 - 1


def reseeded(bound: BoundWorkflow, rng: random.Random | None = None) -> BoundWorkflow | None:
    """``bound`` with new seeds (``None`` when it has no seed to change: a retry would make the same output)."""
    if not bound.seeds:
        return None
    pick = rng or random.SystemRandom()
    graph = copy.deepcopy(bound.graph)
    seeds: list[SeedUsed] = []
    for seed in bound.seeds:
        value = pick.randint(0, _SEED_MAX)
        graph[seed.node_id]["inputs"][seed.input] = value
        seeds.append(seed.model_copy(update={"value": value, "random": True}))
    return dataclasses.replace(bound, graph=graph, seeds=seeds)
