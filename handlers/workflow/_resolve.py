"""The one path from a job's parameters to the one graph it runs: split off the graph edits, make speech text
speakable, bind, apply the edits, fold a seed batch into a single prompt, and cut long speech into chunks.

The worker (before queueing), dispatch (pre-validation) and the CLI (checking a job before sending it) all call
these, so a job one of them accepts is a job the others accept.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from pydantic import JsonValue

from handlers.workflow._binding import BindingError, BoundWorkflow, bind, bind_template
from handlers.workflow._catalogue import Catalogue
from handlers.workflow._edit_params import apply_edits, prepare_speech_params, split_edit_params
from handlers.workflow._output_prefix import filename_prefix_problems
from handlers.workflow._speech import split_speech
from handlers.workflow._templates import Template
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
    edits, rest = split_edit_params(params, template.params())
    rest = prepare_speech_params(rest, template.kind)
    bound = bind_template(template, rest, overrides, media_names=media_names, rng=rng, catalogue=catalogue)
    return _checked(
        _speech_chunks(merge_variants(apply_edits(bound, edits, profile=template.profile, media_names=media_names)))
    )


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
    bound = bind(graph, rest, overrides, media_names=media_names, rng=rng, catalogue=catalogue)
    return _checked(_speech_chunks(merge_variants(apply_edits(bound, edits, media_names=media_names))))


def _checked(bound: BoundWorkflow) -> BoundWorkflow:
    """What no graph may do whatever bound it: write outside the job's folder."""
    problems = filename_prefix_problems(bound.graph)
    if problems:
        raise BindingError(problems)
    return bound


def _speech_chunks(bound: BoundWorkflow) -> BoundWorkflow:
    return replace(bound, graph=split_speech(bound.graph))
