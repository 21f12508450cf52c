"""The one path from a job's parameters to the one graph it runs: split off the graph edits, make speech text
speakable, bind (once per prompt of a ``prompts`` batch), apply the edits, fold the variations (prompts x seeds)
into a single prompt, and cut long speech into chunks.

The worker (before queueing), dispatch (pre-validation) and the CLI (checking a job before sending it) all call
these, so a job one of them accepts is a job the others accept.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from pydantic import JsonValue

from handlers.contract import Problem, Variation
from handlers.workflow._binding import BindingError, BoundWorkflow, bind, bind_template
from handlers.workflow._catalogue import Catalogue
from handlers.workflow._edit_params import GraphEdits, apply_edits, prepare_speech_params, split_edit_params
from handlers.workflow._output_prefix import filename_prefix_problems
from handlers.workflow._speech import split_speech
from handlers.workflow._templates import Template, find_placeholders
from handlers.workflow._variants import merge_variants

__all__ = ["resolve_graph", "resolve_template"]


def resolve_template(
    template: Template,
    params: Mapping[str, JsonValue],
    overrides: Mapping[str, JsonValue],
    *,
    media_names: Collection[str] | None = None,
    rng: random.Random | None = None,
    catalogue: Catalogue | None = None,
) -> BoundWorkflow:
    """``template`` bound with ``params`` and ``overrides``, its edits applied, its variants merged. With a
    ``catalogue``, file inputs naming a media item bind to it (see :func:`bind`)."""
    declared = template.params()
    edits, rest = split_edit_params(params, declared)
    rest = prepare_speech_params(rest, template.kind)

    def run(values: Mapping[str, JsonValue], rng: random.Random | None) -> list[BoundWorkflow]:
        bound = bind_template(template, values, overrides, media_names=media_names, rng=rng, catalogue=catalogue)
        return apply_edits(bound, edits, profile=template.profile, media_names=media_names)

    return _checked(_speech_chunks(_variations(edits, rest, "prompt" in declared, run, rng)))


def resolve_graph(
    graph: Mapping[str, Any],
    params: Mapping[str, JsonValue],
    overrides: Mapping[str, JsonValue],
    *,
    media_names: Collection[str] | None = None,
    rng: random.Random | None = None,
    catalogue: Catalogue | None = None,
) -> BoundWorkflow:
    """An inline API ``graph`` bound with ``params`` (placeholders) and ``overrides``, edits applied, merged. With a
    ``catalogue``, file inputs naming a media item bind to it (see :func:`bind`)."""
    edits, rest = split_edit_params(params)

    def run(values: Mapping[str, JsonValue], rng: random.Random | None) -> list[BoundWorkflow]:
        bound = bind(graph, values, overrides, media_names=media_names, rng=rng, catalogue=catalogue)
        return apply_edits(bound, edits, media_names=media_names)

    return _checked(_speech_chunks(_variations(edits, rest, "prompt" in find_placeholders(graph), run, rng)))


_Run = Callable[[Mapping[str, JsonValue], random.Random | None], list[BoundWorkflow]]


def _variations(
    edits: GraphEdits, params: Mapping[str, JsonValue], has_prompt: bool, run: _Run, rng: random.Random | None
) -> BoundWorkflow:
    """Bind once per prompt of ``prompts`` (or once), each binding's seed variants after it, merged into one
    workflow whose variations say which prompt and seed made each node. Every prompt draws the same random
    seeds, so a prompts batch compares prompts, not seeds."""
    batch = edits.prompts is not None or edits.seeds is not None or (edits.count or 1) > 1
    if edits.prompts is None:
        variants = run(params, rng)
        prompt = params.get("prompt")
        prompts: list[str | None] = [prompt if isinstance(prompt, str) else None] * len(variants)
    else:
        if not has_prompt:
            message = "needs a 'prompt' parameter in the workflow (a template parameter or a {{prompt}} placeholder)"
            raise BindingError([Problem(path="input.params.prompts", message=message)])
        state = (rng or random.SystemRandom()).getrandbits(64)
        variants, prompts = [], []
        for text in edits.prompts:
            made = run({**params, "prompt": text}, random.Random(state))  # noqa: S311 - seeds, not secrets
            variants.extend(made)
            prompts.extend([text] * len(made))
    if not batch:
        return merge_variants(variants)
    labels = [
        Variation(index=i, prompt=prompt, seed=_variant_seed(variant))
        for i, (variant, prompt) in enumerate(zip(variants, prompts, strict=True))
    ]
    return merge_variants(variants, labels)


def _variant_seed(variant: BoundWorkflow) -> int | None:
    return variant.seeds[0].value if variant.seeds else None


def _checked(bound: BoundWorkflow) -> BoundWorkflow:
    """What no graph may do whatever bound it: write outside the job's folder."""
    problems = filename_prefix_problems(bound.graph)
    if problems:
        raise BindingError(problems)
    return bound


def _speech_chunks(bound: BoundWorkflow) -> BoundWorkflow:
    return replace(bound, graph=split_speech(bound.graph))
