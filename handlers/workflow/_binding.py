"""Parameter binding: ONE mechanism for the three ways a job sets node inputs.

1. Manifest parameters (``template.json``): named, typed, bounded, each bound to ``{node, input}`` pairs.
2. Placeholders: an input whose whole value is ``"{{name}}"`` is set by the parameter ``name``.
3. Overrides: ``"<node id or title>.<input>": value``, applied last, typed like the value they replace.

All three become assignments to ``(node id, input)``; every problem found on the way (unknown or missing
parameters, bad values, unknown or ambiguous nodes, unknown inputs) is collected and raised at once as a
:class:`BindingError`. The input graph is never modified; the result holds a new one plus a record of what was
bound: the seeds used (random ones included) and which node inputs need a staged media file name.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from handlers.contract import ErrorCode, JobError, Problem, SeedUsed, Variation, format_path, split_override_key
from handlers.workflow._catalogue import Catalogue
from handlers.workflow._character import CharacterProfile
from handlers.workflow._coerce import RANDOM_SEED, coerce_like, coerce_seed
from handlers.workflow._manifest import ParamType, TemplateManifest
from handlers.workflow._node_refs import NodeIndex, NodeRefError, is_link
from handlers.workflow._params import MISSING, ParamSpec, param_specs
from handlers.workflow._templates import Template, find_placeholders, placeholder_name

__all__ = [
    "RANDOM_SEED_MAX",
    "SEED_INPUTS",
    "BindingError",
    "BoundWorkflow",
    "MediaBinding",
    "bind",
    "bind_template",
]

#: Input names that hold a sampler seed, wherever they are (KSampler ``seed``, SamplerCustom ``noise_seed``).
SEED_INPUTS = frozenset({"seed", "noise_seed"})
#: Random seeds stay below 2**32: several node packs cap their seed inputs there, and JavaScript clients keep
#: such integers exact.
RANDOM_SEED_MAX = 2**32 - 1


class BindingError(ValueError):
    """The job's parameters or overrides do not fit the workflow. ``problems`` lists every one of them."""

    code = ErrorCode.INVALID_INPUT
    retryable = False

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} binding the workflow's parameters")

    def __str__(self) -> str:
        return str(self.args[0]) + "".join(f"\n  {p}" for p in self.problems)

    def to_job_error(self, job_id: str | None = None) -> JobError:
        return JobError.from_problems(self.problems, code=self.code, job_id=job_id)


@dataclass(frozen=True)
class MediaBinding:
    """A media parameter: the media name it was given and the loader inputs that must receive the staged file."""

    param: str
    type: ParamType
    value: str
    from_job: bool
    """``True`` when ``value`` names one of the job's media items (stage it, then :meth:`BoundWorkflow.with_staged`
    rewrites the targets); ``False`` for a template default naming a file already in ComfyUI's input folder."""
    targets: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class BoundWorkflow:
    graph: dict[str, Any]
    params: dict[str, JsonValue] = field(default_factory=dict)
    """The value each parameter was bound with (random seeds resolved)."""
    seeds: list[SeedUsed] = field(default_factory=list)
    media: list[MediaBinding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    variations: tuple[Variation, ...] = ()
    """A batch's variations (``prompts`` x ``seeds``/``count``), when the job asked for one."""
    variation_of: Mapping[str, int] = field(default_factory=dict)
    """Node id -> index into :attr:`variations` (a node several variations share belongs to the first)."""

    def variation(self, node_id: str) -> Variation | None:
        """The variation whose graph holds ``node_id`` (an output node), if the job is a batch."""
        index = self.variation_of.get(node_id)
        return self.variations[index] if index is not None else None

    def with_staged(self, staged: Mapping[str, str]) -> dict[str, Any]:
        """A copy of the graph whose media inputs name the staged files (``staged``: media name → file name as
        ComfyUI's loaders see it, e.g. ``"job-1/face.png"``)."""
        missing = sorted({m.value for m in self.media if m.from_job and m.value not in staged})
        if missing:
            raise KeyError(f"media not staged: {', '.join(missing)}")
        graph = copy.deepcopy(self.graph)
        for binding in self.media:
            if binding.from_job:
                for node_id, input_name in binding.targets:
                    graph[node_id]["inputs"][input_name] = staged[binding.value]
        return graph


@dataclass
class _Assignment:
    node_id: str
    input: str
    value: Any
    param: str | None = None
    seed: bool = False
    random_seed: bool = False


@dataclass
class _Binder:
    graph: Mapping[str, Any]
    rng: random.Random
    media_names: Collection[str] | None
    #: The template's own placeholder strings -> parameter names (``TemplateManifest.placeholders``).
    aliases: Mapping[str, str] = field(default_factory=dict)
    index: NodeIndex = field(init=False)
    problems: list[Problem] = field(default_factory=list)
    assignments: list[_Assignment] = field(default_factory=list)
    values: dict[str, JsonValue] = field(default_factory=dict)
    media: list[MediaBinding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.index = NodeIndex(self.graph)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path=path, message=message))

    def random_seed(self, minimum: float | None, maximum: float | None) -> int:
        low = max(0, int(minimum)) if minimum is not None else 0
        high = min(int(maximum), RANDOM_SEED_MAX) if maximum is not None else RANDOM_SEED_MAX
        return self.rng.randint(low, max(low, high))

    def targets(self, spec: ParamSpec) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if spec.param is not None:
            for i, bind in enumerate(spec.param.binds):
                try:
                    found.append((self.index.resolve_input(bind.node, bind.input), bind.input))
                except NodeRefError as exc:
                    self.problem(format_path("template", ["params", spec.name, "binds", i]), str(exc))
        found.extend(t for t in spec.placeholders if t not in found)
        return found

    def bind_params(self, specs: Mapping[str, ParamSpec], given: Mapping[str, JsonValue]) -> None:
        for name in given:
            if name not in specs:
                known = ", ".join(specs) if specs else "none: this workflow takes no parameters"
                self.problem(format_path("input", ["params", name]), f"is not a parameter (parameters: {known})")
        for name, spec in specs.items():
            targets = self.targets(spec)
            path = format_path("input", ["params", name])
            if name in given:
                raw: JsonValue | None = given[name]
                from_caller = True
            elif spec.param is not None and spec.param.is_media and self.media_names and name in self.media_names:
                # A media item named after the parameter is its value: `media: [{"name": "image", ...}]` alone
                # fills `image`, as a caller would expect.
                raw, from_caller = name, True
            elif spec.default is not MISSING:
                raw = spec.default
                from_caller = False
                if spec.character_default is not MISSING:
                    path = format_path("character", ["defaults", name])
            elif spec.type is ParamType.SEED:
                raw, from_caller = RANDOM_SEED, False
            elif spec.required:
                self.problem(path, "is required")
                continue
            else:
                continue  # optional and not given: the graph keeps its own value
            self.bind_param(spec, raw, from_caller, path, targets)

    def bind_param(
        self, spec: ParamSpec, raw: JsonValue, from_caller: bool, path: str, targets: list[tuple[str, str]]
    ) -> None:
        value: Any = raw
        random_seed = False
        if spec.param is not None:
            try:
                value = spec.param.coerce(raw)
            except ValueError as exc:
                self.problem(path, str(exc))
                return
            if spec.type is ParamType.SEED and value == RANDOM_SEED:
                value, random_seed = self.random_seed(spec.param.min, spec.param.max), True
            if spec.param.is_media:
                from_job = from_caller or (self.media_names is not None and value in self.media_names)
                if from_caller and self.media_names is not None and value not in self.media_names:
                    have = ", ".join(sorted(self.media_names)) or "none"
                    self.problem(path, f"names no media item {value!r} (media: {have})")
                    return
                self.media.append(MediaBinding(spec.name, spec.param.type, value, from_job, tuple(targets)))
        self.values[spec.name] = value
        for node_id, input_name in targets:
            self.assignments.append(
                _Assignment(node_id, input_name, value, spec.name, spec.type is ParamType.SEED, random_seed)
            )

    def bind_overrides(self, overrides: Mapping[str, JsonValue], specs: Mapping[str, ParamSpec]) -> None:
        for key, raw in overrides.items():
            path = format_path("input", ["overrides", key])
            try:
                node_ref, input_name = split_override_key(key)
                node_id = self.index.resolve_input(node_ref, input_name)
            except (ValueError, NodeRefError) as exc:
                self.problem(path, str(exc))
                continue
            current = self.index.inputs(node_id)[input_name]
            spec = specs.get(placeholder_name(current, self.aliases) or "")
            is_seed = input_name in SEED_INPUTS or (spec is not None and spec.type is ParamType.SEED)
            random_seed = False
            value: Any
            try:
                if is_seed:
                    value = coerce_seed(raw)
                elif spec is not None and spec.param is not None:
                    value = spec.param.coerce(raw)
                elif is_link(current) or placeholder_name(current, self.aliases) is not None:
                    value = raw
                else:
                    value = coerce_like(raw, current)
            except ValueError as exc:
                self.problem(path, str(exc))
                continue
            if is_seed and value == RANDOM_SEED:
                value, random_seed = self.random_seed(None, None), True
            if is_link(current):
                self.warnings.append(
                    f"override {key!r} replaced the link from node {current[0]} output {current[1]} with a value"
                )
            self.assignments.append(_Assignment(node_id, input_name, value, None, is_seed, random_seed))

    def result(self) -> BoundWorkflow:
        graph = copy.deepcopy(dict(self.graph))
        seeds: dict[tuple[str, str], SeedUsed] = {}
        for a in self.assignments:  # later assignments (overrides) win
            graph[a.node_id]["inputs"][a.input] = a.value
            if a.seed:
                seeds[(a.node_id, a.input)] = SeedUsed(
                    node_id=a.node_id, input=a.input, value=a.value, param=a.param, random=a.random_seed
                )
            else:
                seeds.pop((a.node_id, a.input), None)
        for node_id, node in graph.items():
            for input_name, value in node.get("inputs", {}).items():
                unbound = input_name in SEED_INPUTS and (node_id, input_name) not in seeds
                if unbound and isinstance(value, int) and not isinstance(value, bool):
                    seeds[(node_id, input_name)] = SeedUsed(node_id=node_id, input=input_name, value=value)
        return BoundWorkflow(
            graph=graph,
            params=dict(self.values),
            seeds=sorted(seeds.values(), key=lambda s: (s.node_id, s.input)),
            media=self.media,
            warnings=self.warnings,
        )


#: What an uploaded-file input holds, as a media parameter type (``file``: 3D models and other files).
_UPLOAD_TYPES: dict[str, ParamType] = {
    "image": ParamType.IMAGE,
    "audio": ParamType.AUDIO,
    "video": ParamType.VIDEO,
    "file": ParamType.STRING,
}


def _file_input_bindings(
    bound: BoundWorkflow, catalogue: Catalogue, media_names: Collection[str]
) -> list[MediaBinding]:
    """Media named directly in the graph: an input whose value is a media item's name binds to it only when the
    catalogue says that input takes a file (``LoadImage.image``, ``LoadAudio.audio``, ...); any other input that
    happens to equal a media name (``KSamplerAdvanced.add_noise: "enable"``) is left alone."""
    names = set(media_names)
    bound_already = {target for binding in bound.media for target in binding.targets}
    found: dict[tuple[str, ParamType], list[tuple[str, str]]] = {}
    for node_id, node in bound.graph.items():
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or class_type not in catalogue:
            continue
        cls = catalogue[class_type]
        for input_name, value in node.get("inputs", {}).items():
            if not isinstance(value, str) or value not in names or (node_id, input_name) in bound_already:
                continue
            spec = cls.input(input_name)
            kind = spec.upload_kind if spec is not None else None
            if kind is not None:
                found.setdefault((value, _UPLOAD_TYPES[kind]), []).append((node_id, input_name))
    return [MediaBinding(name, kind, name, True, tuple(targets)) for (name, kind), targets in found.items()]


def _graph_problem(graph: Any) -> Problem | None:
    if not isinstance(graph, Mapping) or not graph:
        return Problem(path="input.workflow", message="must be a non-empty API-format graph")
    bad = [k for k, n in graph.items() if not (isinstance(n, Mapping) and isinstance(n.get("inputs", {}), Mapping))]
    if bad:
        return Problem(path="input.workflow", message=f"node(s) {', '.join(bad[:10])} have no inputs object")
    return None


def bind(
    graph: Mapping[str, Any],
    params: Mapping[str, JsonValue] | None = None,
    overrides: Mapping[str, JsonValue] | None = None,
    *,
    manifest: TemplateManifest | None = None,
    profile: CharacterProfile | None = None,
    media_names: Collection[str] | None = None,
    rng: random.Random | None = None,
    catalogue: Catalogue | None = None,
) -> BoundWorkflow:
    """Bind ``params`` (through ``manifest`` and the graph's placeholders, with ``profile``'s defaults) and then
    ``overrides`` into a copy of the API-format ``graph``.

    ``media_names``: the job's media item names; when given, a media parameter the caller set must name one.
    ``catalogue``: with it, a file input (``LoadImage.image``...) whose value names a media item is bound to that
    item too, as a media parameter would be; without it only parameters bind media.
    ``rng``: where random seeds come from (a seeded ``random.Random`` in tests; the system's by default).
    Raises :class:`BindingError` with every problem found.
    """
    problem = _graph_problem(graph)
    if problem is not None:
        raise BindingError([problem])
    aliases = manifest.placeholders if manifest is not None else {}
    binder = _Binder(
        graph=graph, rng=rng if rng is not None else random.SystemRandom(), media_names=media_names, aliases=aliases
    )
    specs = param_specs(find_placeholders(graph, aliases), manifest, profile)
    binder.bind_params(specs, params or {})
    binder.bind_overrides(overrides or {}, specs)
    if binder.problems:
        raise BindingError(binder.problems)
    bound = binder.result()
    if catalogue is not None and media_names:
        implicit = _file_input_bindings(bound, catalogue, media_names)
        if implicit:
            bound = BoundWorkflow(
                graph=bound.graph,
                params=bound.params,
                seeds=bound.seeds,
                media=[*bound.media, *implicit],
                warnings=bound.warnings,
            )
    return bound


def bind_template(
    template: Template,
    params: Mapping[str, JsonValue] | None = None,
    overrides: Mapping[str, JsonValue] | None = None,
    *,
    media_names: Collection[str] | None = None,
    rng: random.Random | None = None,
    catalogue: Catalogue | None = None,
) -> BoundWorkflow:
    """:func:`bind` with the template's graph, manifest and character profile."""
    return bind(
        template.graph,
        params,
        overrides,
        manifest=template.manifest,
        profile=template.profile,
        media_names=media_names,
        rng=rng,
        catalogue=catalogue,
    )
