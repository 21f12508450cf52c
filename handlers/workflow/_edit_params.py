"""Graph edits requested through a job's ``params``: ``loras``, ``aspect_ratio``/``megapixels``, ``references``/
``identity``, ``seeds``/``count``, and ``prompts`` (a batch of variations: bound once per prompt, see
``handlers.workflow._resolve``).

These names are reserved for edits unless a template declares a parameter of the same name (then it is the
template's). The worker's path is::

    edits, params = split_edit_params(job.params, template.params())
    bound = bind_template(template, params, job.overrides, media_names=names)   # the one binding mechanism
    variants = apply_edits(bound, edits, profile=template.profile, media_names=names)
    graph = merge_variants(variants).with_staged(staged)                        # one prompt for the whole batch

Every problem is a :class:`BindingError` (``invalid_input``) with a path under ``input.params``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationError

from handlers.contract import Problem, SeedUsed, validation_problems
from handlers.workflow._binding import BindingError, BoundWorkflow, MediaBinding
from handlers.workflow._character import CharacterProfile
from handlers.workflow._edits import (
    EditError,
    IdentityMethod,
    LoraChoice,
    add_loras,
    attach_references,
    latent_size,
    seed_variants,
    set_aspect_ratio,
)
from handlers.workflow._manifest import ParamType
from handlers.workflow._tts_text import prepare_tts_text

__all__ = [
    "EDIT_PARAMS",
    "SPEECH_PARAMS",
    "GraphEdits",
    "LoraParam",
    "apply_edits",
    "prepare_speech_params",
    "split_edit_params",
]

MAX_VARIANTS: Final = 16
#: Parameters of ``audio`` templates that hold the text to be spoken.
SPEECH_PARAMS: Final = frozenset({"text"})
_SEED_MAX: Final = 2**64 - 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraParam(_Model):
    """``{"name": "detail.safetensors", "strength": 0.8}``: a file in ``models/loras`` and how strongly it applies."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^/\\].*$")]
    strength: float = Field(default=1.0, ge=-100, le=100)
    strength_clip: float | None = Field(default=None, ge=-100, le=100, description="default: strength")
    source: str | None = Field(default=None, description="id or title of the model loader (default: every one)")


class GraphEdits(_Model):
    """The edits a job asks for, each optional."""

    loras: list[LoraParam] = Field(default_factory=list, max_length=16)
    aspect_ratio: str | float | None = Field(default=None, description="'16:9', '4:5', 1.5 ...")
    megapixels: float | None = Field(default=None, gt=0, le=16, description="default: the template's pixel count")
    references: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list, max_length=8)
    identity: IdentityMethod | None = Field(default=None, description="default faceid when references are given")
    identity_weight: float = Field(default=0.85, ge=-1, le=3)
    seeds: list[Annotated[int, Field(ge=0, le=_SEED_MAX)]] | None = Field(
        default=None, min_length=1, max_length=MAX_VARIANTS, description="one graph per seed"
    )
    count: int | None = Field(default=None, ge=1, le=MAX_VARIANTS, description="graphs with seeds s, s+1, ...")
    prompts: list[Annotated[str, StringConstraints(min_length=1, max_length=10_000)]] | None = Field(
        default=None, min_length=1, max_length=MAX_VARIANTS, description="one variation per prompt (x seeds)"
    )

    @property
    def empty(self) -> bool:
        return self == GraphEdits()


#: Parameter names that request an edit (unless the template declares them).
EDIT_PARAMS: Final = frozenset(GraphEdits.model_fields)


def split_edit_params(
    params: Mapping[str, JsonValue], declared: Collection[str] = ()
) -> tuple[GraphEdits, dict[str, JsonValue]]:
    """The edits among ``params`` and the parameters left for binding. ``declared``: the template's parameter
    names (a template's own ``count`` or ``loras`` stays a parameter)."""
    edit_keys = [k for k in params if k in EDIT_PARAMS and k not in declared]
    rest = {k: v for k, v in params.items() if k not in edit_keys}
    try:
        edits = GraphEdits.model_validate({k: params[k] for k in edit_keys})
    except ValidationError as exc:
        raise BindingError(validation_problems(exc, root="input.params")) from None
    if edits.seeds is not None and edits.count is not None and edits.count != len(edits.seeds):
        raise BindingError(
            [Problem(path="input.params.count", message="must equal the number of seeds, or be left out")]
        )
    if edits.prompts is not None:
        per_prompt = len(edits.seeds) if edits.seeds is not None else (edits.count or 1)
        if len(edits.prompts) * per_prompt > MAX_VARIANTS:
            message = f"{len(edits.prompts)} prompts x {per_prompt} seeds is over {MAX_VARIANTS} variations"
            raise BindingError([Problem(path="input.params.prompts", message=message)])
        if "prompt" in rest:
            raise BindingError([Problem(path="input.params.prompts", message="give prompt or prompts, not both")])
    return edits, rest


def prepare_speech_params(params: Mapping[str, JsonValue], kind: str) -> dict[str, JsonValue]:
    """``params`` with the text an ``audio`` template speaks made speakable (:func:`prepare_tts_text`): numbers and
    symbols as words, markdown and emoji gone. Other kinds and other parameters pass through unchanged."""
    result = dict(params)
    if kind == "audio":
        for name in SPEECH_PARAMS:
            value = result.get(name)
            if isinstance(value, str):
                result[name] = prepare_tts_text(value)
    return result


def _problem(exc: EditError, default: str) -> BindingError:
    # An edit's param is already a path below input.params ("loras[0].source").
    return BindingError([Problem(path=f"input.params.{exc.param or default}", message=exc.message)])


def apply_edits(
    bound: BoundWorkflow,
    edits: GraphEdits,
    *,
    profile: CharacterProfile | None = None,
    media_names: Collection[str] | None = None,
) -> list[BoundWorkflow]:
    """``bound`` with ``edits`` applied: one workflow, or one per seed when ``seeds`` or ``count`` ask for more.

    Reference images named by the caller must be media items (when ``media_names`` is given); the character's
    ``reference_images`` are used when the caller asks for ``identity`` without naming references. Each added
    ``LoadImage`` is recorded as a :class:`MediaBinding` so :meth:`BoundWorkflow.with_staged` rewrites it.
    """
    graph: dict[str, Any] = bound.graph
    media = list(bound.media)
    try:
        if edits.loras:
            choices = [LoraChoice(lora.name, lora.strength, lora.strength_clip, lora.source) for lora in edits.loras]
            graph = add_loras(graph, choices)
        if edits.aspect_ratio is not None:
            graph, _ = set_aspect_ratio(graph, edits.aspect_ratio, edits.megapixels)
        elif edits.megapixels is not None:
            current = latent_size(graph)
            if current is None:
                raise EditError("the graph has no latent node with a plain width and height", "megapixels")
            graph, _ = set_aspect_ratio(graph, current[0] / current[1], edits.megapixels, param="megapixels")
        references = list(edits.references)
        from_caller = bool(references)
        if not references and edits.identity is not None and profile is not None:
            references = profile.reference_names()
        if edits.identity is not None and not references:
            raise EditError("needs references (or a character with reference_images)", "identity")
        if references:
            if from_caller and media_names is not None:
                unknown = [name for name in references if name not in media_names]
                if unknown:
                    have = ", ".join(sorted(media_names)) or "none"
                    raise EditError(f"name no media item: {', '.join(unknown)} (media: {have})", "references")
            graph, loaders = attach_references(
                graph, references, method=edits.identity or IdentityMethod.FACEID, weight=edits.identity_weight
            )
            for image, node_id, input_name in loaders:
                from_job = from_caller or (media_names is not None and image in media_names)
                media.append(MediaBinding("references", ParamType.IMAGE, image, from_job, ((node_id, input_name),)))
        seeds = _variant_seeds(bound, edits)
        graphs = [graph] if seeds is None else seed_variants(graph, seeds, param="seeds" if edits.seeds else "count")
    except EditError as exc:
        raise _problem(exc, "edits") from None
    if seeds is None:
        return [replace(bound, graph=graph, media=media)]
    return [
        replace(bound, graph=variant, media=media, seeds=_seeds_used(variant, bound.seeds, seed))
        for variant, seed in zip(graphs, seeds, strict=True)
    ]


def _variant_seeds(bound: BoundWorkflow, edits: GraphEdits) -> list[int] | None:
    if edits.seeds is not None:
        return list(edits.seeds)
    if edits.count is None or edits.count == 1:
        return None
    first = bound.seeds[0].value if bound.seeds else 0
    # ComfyUI's own "increment" convention: the batch is reproducible from its first seed.
    return [(first + i) % (_SEED_MAX + 1) for i in range(edits.count)]


def _seeds_used(graph: Mapping[str, Any], before: list[SeedUsed], seed: int) -> list[SeedUsed]:
    known = {(s.node_id, s.input): s for s in before}
    used = []
    for node_id, node in graph.items():
        for name, value in node.get("inputs", {}).items():
            if name in ("seed", "noise_seed") and value == seed and not isinstance(value, bool):
                previous = known.get((node_id, name))
                used.append(
                    SeedUsed(node_id=node_id, input=name, value=seed, param=previous.param if previous else None)
                )
    return sorted(used, key=lambda s: (s.node_id, s.input))
