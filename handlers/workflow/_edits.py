"""Graph edits, as pure functions: each takes an API graph and returns an edited copy (the input is never modified).

- :func:`add_loras`: a chain of LoRA loaders between a model (and CLIP) source and every consumer of it.
- :func:`set_size` / :func:`set_aspect_ratio`: width and height of the latent node(s).
- :func:`attach_references`: identity from reference images, through IPAdapter FaceID or PuLID, between the model
  source and the sampler.
- :func:`seed_variants` and :func:`set_batch_size`: several images from one job.

A problem is an :class:`EditError` naming what in the request or the graph does not fit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from handlers.workflow._graph_ops import consumers, fresh_ids, link_source, rewire
from handlers.workflow._node_refs import NodeIndex, NodeRefError
from handlers.workflow._sizes import ModelFamily, detect_family, size_for

__all__ = [
    "IMAGE_LATENT_CLASSES",
    "LATENT_SIZE_CLASSES",
    "EditError",
    "IdentityMethod",
    "LoraChoice",
    "add_loras",
    "attach_references",
    "latent_size",
    "seed_variants",
    "set_aspect_ratio",
    "set_batch_size",
    "set_size",
]

#: Loader classes that give a diffusion model: class -> (MODEL output slot, CLIP output slot or None).
MODEL_LOADERS: Final[Mapping[str, tuple[int, int | None]]] = {
    "CheckpointLoaderSimple": (0, 1),
    "CheckpointLoader": (0, 1),
    "unCLIPCheckpointLoader": (0, 1),
    "ImageOnlyCheckpointLoader": (0, None),
    "UNETLoader": (0, None),
    "UnetLoaderGGUF": (0, None),
}
_CLIP_LOADERS: Final = frozenset({"CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "QuadrupleCLIPLoader"})
#: Nodes whose width/height set the size of what is generated.
LATENT_SIZE_CLASSES: Final = frozenset(
    {
        "EmptyLatentImage",
        "EmptySD3LatentImage",
        "EmptyHunyuanLatentVideo",
        "EmptyMochiLatentVideo",
        "EmptyLTXVLatentVideo",
        "EmptyCosmosLatentVideo",
        "WanImageToVideo",
        "Wan22ImageToVideoLatent",
    }
)
#: Latent nodes whose ``batch_size`` makes more images in one pass (a video latent's batch is not "more images").
IMAGE_LATENT_CLASSES: Final = frozenset({"EmptyLatentImage", "EmptySD3LatentImage"})
#: Nodes that take the (patched) diffusion model last: identity adapters go right before them.
_MODEL_TAKERS: Final = frozenset(
    {"KSampler", "KSamplerAdvanced", "SamplerCustom", "BasicGuider", "CFGGuider", "DualCFGGuider"}
)


class EditError(ValueError):
    """An edit does not fit the graph or its arguments are wrong. ``param`` names the job parameter it came from."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class LoraChoice:
    """One LoRA of a chain: a file in ``models/loras`` and its strengths (``strength_clip`` defaults to
    ``strength``). ``source``: the id or title of the loader to apply it after (default: every model loader)."""

    name: str
    strength: float = 1.0
    strength_clip: float | None = None
    source: str | None = None


class IdentityMethod(StrEnum):
    FACEID = "faceid"
    """cubiq/ComfyUI_IPAdapter_plus: IPAdapterUnifiedLoaderFaceID (FaceID Plus V2) + IPAdapterFaceID."""
    PULID = "pulid"
    """cubiq/PuLID_ComfyUI: PulidModelLoader + PulidEvaClipLoader + PulidInsightFaceLoader + ApplyPulid."""


PULID_MODEL: Final = "ip-adapter_pulid_sdxl_fp16.safetensors"
_IDENTITY_FAMILIES: Final = frozenset({ModelFamily.SDXL, ModelFamily.SD15})


def _copy(graph: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(graph))


def _node(class_type: str, inputs: dict[str, Any], title: str) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}


def _resolve(graph: Mapping[str, Any], ref: str, param: str) -> str:
    try:
        return NodeIndex(graph).resolve(ref)
    except NodeRefError as exc:
        raise EditError(str(exc), param) from None


def _model_sources(graph: Mapping[str, Any], source: str | None, param: str) -> list[str]:
    if source is not None:
        node_id = _resolve(graph, source, param)
        if graph[node_id].get("class_type") not in MODEL_LOADERS:
            known = ", ".join(sorted(MODEL_LOADERS))
            raise EditError(
                f"node {node_id} ({graph[node_id].get('class_type')}) is not a model loader ({known})", param
            )
        return [node_id]
    found = [
        node_id
        for node_id, node in graph.items()
        if node.get("class_type") in MODEL_LOADERS and consumers(graph, (node_id, MODEL_LOADERS[node["class_type"]][0]))
    ]
    if not found:
        raise EditError("the graph has no model loader to chain LoRAs after", param)
    return found


def _single_clip_source(graph: Mapping[str, Any], param: str) -> tuple[str, int]:
    clip_loaders = [node_id for node_id, node in graph.items() if node.get("class_type") in _CLIP_LOADERS]
    if len(clip_loaders) != 1:
        raise EditError(f"with_clip needs exactly one text encoder loader, the graph has {len(clip_loaders)}", param)
    return clip_loaders[0], 0


def add_loras(
    graph: Mapping[str, Any],
    loras: Sequence[LoraChoice],
    *,
    with_clip: bool | None = None,
    param: str = "loras",
) -> dict[str, Any]:
    """Chain ``loras`` (in order) after each model loader, rewiring every consumer of its model (and CLIP) output
    to the end of the chain.

    ``with_clip``: ``None`` (default) patches CLIP too when the loader gives one (a checkpoint: ``LoraLoader``) and
    not otherwise (a diffusion-model loader, as for Flux, Qwen-Image, Z-Image, WAN: ``LoraLoaderModelOnly``);
    ``True`` uses ``LoraLoader`` with the graph's one text encoder loader; ``False`` never touches CLIP. A graph
    with two experts (WAN 2.2 high/low noise) gets a chain on each, unless a LoRA names its ``source``.
    """
    result = _copy(graph)
    if not loras:
        return result
    ids = fresh_ids(result)
    for index, lora in enumerate(loras):
        if not lora.name.strip():
            raise EditError("a LoRA needs a file name", f"{param}[{index}].name")
    all_sources = _model_sources(result, None, param) if any(lora.source is None for lora in loras) else []
    for source_id in dict.fromkeys(
        src
        for lora_index, lora in enumerate(loras)
        for src in (
            _model_sources(result, lora.source, f"{param}[{lora_index}].source")
            if lora.source is not None
            else all_sources
        )
    ):
        chain = [lora for lora in loras if lora.source is None or _resolve(result, lora.source, param) == source_id]
        label = NodeIndex(result).title(source_id) or source_id
        suffix = f" ({label})" if len(all_sources) > 1 else ""
        _chain_after(result, source_id=source_id, chain=chain, with_clip=with_clip, ids=ids, param=param, suffix=suffix)
    return result


def _chain_after(
    graph: dict[str, Any],
    *,
    source_id: str,
    chain: Sequence[LoraChoice],
    with_clip: bool | None,
    ids: Iterator[str],
    param: str,
    suffix: str,
) -> None:
    model_slot, clip_slot = MODEL_LOADERS[graph[source_id]["class_type"]]
    clip: tuple[str, int] | None = None
    if with_clip is None:
        clip = (source_id, clip_slot) if clip_slot is not None else None
    elif with_clip:
        clip = (source_id, clip_slot) if clip_slot is not None else _single_clip_source(graph, param)
    model = (source_id, model_slot)
    model_users = consumers(graph, model)
    clip_users = consumers(graph, clip) if clip is not None else []
    for position, lora in enumerate(chain, start=1):
        node_id = next(ids)
        title = (f"LoRA {position}" if len(chain) > 1 else "LoRA") + f"{suffix}: {lora.name}"
        if clip is not None:
            strength_clip = lora.strength if lora.strength_clip is None else lora.strength_clip
            graph[node_id] = _node(
                "LoraLoader",
                {
                    "model": list(model),
                    "clip": list(clip),
                    "lora_name": lora.name,
                    "strength_model": lora.strength,
                    "strength_clip": strength_clip,
                },
                title,
            )
            clip = (node_id, 1)
        else:
            graph[node_id] = _node(
                "LoraLoaderModelOnly",
                {"model": list(model), "lora_name": lora.name, "strength_model": lora.strength},
                title,
            )
        model = (node_id, 0)
    rewire(graph, model_users, model)
    if clip is not None:
        rewire(graph, clip_users, clip)


def _latent_nodes(graph: Mapping[str, Any], node: str | None, param: str) -> list[str]:
    if node is not None:
        node_id = _resolve(graph, node, param)
        inputs = graph[node_id].get("inputs", {})
        if "width" not in inputs or "height" not in inputs:
            raise EditError(f"node {node_id} ({graph[node_id].get('class_type')}) has no width and height", param)
        return [node_id]
    found = [node_id for node_id, n in graph.items() if n.get("class_type") in LATENT_SIZE_CLASSES]
    if not found:
        known = ", ".join(sorted(LATENT_SIZE_CLASSES))
        raise EditError(f"the graph has no latent node to size ({known})", param)
    return found


def latent_size(graph: Mapping[str, Any], node: str | None = None) -> tuple[int, int] | None:
    """The width and height of the (first) latent node, when both are plain integers."""
    try:
        node_id = _latent_nodes(graph, node, "size")[0]
    except EditError:
        return None
    inputs = graph[node_id]["inputs"]
    width, height = inputs.get("width"), inputs.get("height")
    if isinstance(width, int) and isinstance(height, int) and not isinstance(width, bool):
        return width, height
    return None


def set_size(
    graph: Mapping[str, Any], width: int, height: int, *, node: str | None = None, param: str = "size"
) -> dict[str, Any]:
    """Set width and height on ``node`` (id or title), or on every latent node of the graph."""
    if width < 1 or height < 1:
        raise EditError(f"width and height must be positive (got {width}x{height})", param)
    result = _copy(graph)
    for node_id in _latent_nodes(result, node, param):
        inputs = result[node_id]["inputs"]
        for name, value in (("width", width), ("height", height)):
            if link_source(inputs.get(name)) is not None:
                raise EditError(f"node {node_id} input {name!r} is fed by a link; set the node it comes from", param)
            inputs[name] = value
    return result


def set_aspect_ratio(
    graph: Mapping[str, Any],
    aspect_ratio: str | float,
    megapixels: float | None = None,
    *,
    family: ModelFamily | None = None,
    node: str | None = None,
    param: str = "aspect_ratio",
) -> tuple[dict[str, Any], tuple[int, int]]:
    """Size the latent node(s) for ``aspect_ratio`` at ``megapixels`` (default: the pixel count the graph has now),
    rounded for the graph's model family (detected from its loaders unless given). Returns the graph and the size."""
    if megapixels is None:
        current = latent_size(graph, node)
        megapixels = current[0] * current[1] / 1024**2 if current else 1.0
    family = family or detect_family(graph)
    try:
        size = size_for(aspect_ratio, megapixels, multiple=16, family=family)
    except ValueError as exc:
        raise EditError(str(exc), param) from None
    return set_size(graph, size[0], size[1], node=node, param=param), size


def _model_takers(graph: Mapping[str, Any]) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """The model output each sampler or guider takes, with the nodes taking it."""
    takers: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for node_id, node in graph.items():
        if node.get("class_type") in _MODEL_TAKERS:
            source = link_source(node.get("inputs", {}).get("model"))
            if source is not None:
                takers.setdefault(source, []).append((node_id, "model"))
    return takers


def attach_references(
    graph: Mapping[str, Any],
    images: Sequence[str],
    *,
    method: IdentityMethod | str = IdentityMethod.FACEID,
    weight: float = 0.85,
    provider: str = "CUDA",
    param: str = "references",
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Keep the identity of the faces in ``images`` (input file or media names): one ``LoadImage`` each, batched,
    fed to an identity adapter inserted between the model and every sampler (or guider) that takes it.

    Returns the graph and the ``(image name, node id, input)`` of each loader, so the caller can stage the files.
    FaceID and PuLID (cubiq's packs) patch SD1.5/SDXL UNets only; another family is an :class:`EditError`.
    """
    if not images:
        raise EditError("give at least one reference image", param)
    try:
        method = IdentityMethod(method)
    except ValueError:
        known = ", ".join(m.value for m in IdentityMethod)
        raise EditError(f"method must be one of {known} (got {method!r})", param) from None
    family = detect_family(graph)
    if family not in _IDENTITY_FAMILIES:
        raise EditError(
            f"{method.value} identity needs an SD1.5/SDXL graph (checkpoint loader); this one is {family or 'unknown'}",
            param,
        )
    result = _copy(graph)
    takers = _model_takers(result)
    if not takers:
        raise EditError("the graph has no sampler or guider taking a model", param)
    ids = fresh_ids(result)
    loaded: list[tuple[str, str, str]] = []
    batch: tuple[str, int] | None = None
    for index, image in enumerate(images, start=1):
        load_id = next(ids)
        result[load_id] = _node("LoadImage", {"image": image}, f"Reference {index}")
        loaded.append((image, load_id, "image"))
        if batch is None:
            batch = (load_id, 0)
        else:
            batch_id = next(ids)
            # ImageBatch scales the second image to the first one's size, so references may differ in size.
            result[batch_id] = _node(
                "ImageBatch", {"image1": list(batch), "image2": [load_id, 0]}, f"References 1-{index}"
            )
            batch = (batch_id, 0)
    assert batch is not None
    for position, (model, users) in enumerate(takers.items(), start=1):
        suffix = f" {position}" if len(takers) > 1 else ""
        patched = _identity_nodes(
            result,
            ids=ids,
            method=method,
            model=model,
            images=batch,
            weight=weight,
            provider=provider,
            suffix=suffix,
        )
        rewire(result, users, patched)
    return result, loaded


def _identity_nodes(
    graph: dict[str, Any],
    *,
    ids: Iterator[str],
    method: IdentityMethod,
    model: tuple[str, int],
    images: tuple[str, int],
    weight: float,
    provider: str,
    suffix: str,
) -> tuple[str, int]:
    if method is IdentityMethod.FACEID:
        loader, apply = next(ids), next(ids)
        graph[loader] = _node(
            "IPAdapterUnifiedLoaderFaceID",
            {"model": list(model), "preset": "FACEID PLUS V2", "lora_strength": 0.6, "provider": provider},
            f"FaceID Loader{suffix}",
        )
        graph[apply] = _node(
            "IPAdapterFaceID",
            {
                "model": [loader, 0],
                "ipadapter": [loader, 1],
                "image": list(images),
                "weight": weight,
                "weight_faceidv2": 1.0,
                "weight_type": "linear",
                "combine_embeds": "average",
                "start_at": 0.0,
                "end_at": 1.0,
                "embeds_scaling": "V only",
            },
            f"FaceID{suffix}",
        )
        return apply, 0
    pulid, eva, face, apply = next(ids), next(ids), next(ids), next(ids)
    graph[pulid] = _node("PulidModelLoader", {"pulid_file": PULID_MODEL}, f"PuLID Model{suffix}")
    graph[eva] = _node("PulidEvaClipLoader", {}, f"PuLID EVA CLIP{suffix}")
    graph[face] = _node("PulidInsightFaceLoader", {"provider": provider}, f"PuLID InsightFace{suffix}")
    graph[apply] = _node(
        "ApplyPulid",
        {
            "model": list(model),
            "pulid": [pulid, 0],
            "eva_clip": [eva, 0],
            "face_analysis": [face, 0],
            "image": list(images),
            "method": "fidelity",
            "weight": weight,
            "start_at": 0.0,
            "end_at": 1.0,
        },
        f"PuLID{suffix}",
    )
    return apply, 0


def _seed_inputs(graph: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (node_id, name)
        for node_id, node in graph.items()
        for name, value in node.get("inputs", {}).items()
        if name in ("seed", "noise_seed") and isinstance(value, int) and not isinstance(value, bool)
    ]


def seed_variants(graph: Mapping[str, Any], seeds: Sequence[int], *, param: str = "seeds") -> list[dict[str, Any]]:
    """One graph per seed (queued together, they run back to back and share every cached loader): each sets the seed
    on every sampler seed input (``seed``/``noise_seed``) that holds a plain integer."""
    targets = _seed_inputs(graph)
    if not targets:
        raise EditError("the graph has no seed input to vary", param)
    variants = []
    for seed in seeds:
        if isinstance(seed, bool) or not 0 <= seed <= 2**64 - 1:
            raise EditError(f"seeds must be integers from 0 to 2^64-1 (got {seed!r})", param)
        variant = _copy(graph)
        for node_id, name in targets:
            variant[node_id]["inputs"][name] = seed
        variants.append(variant)
    return variants


def set_batch_size(graph: Mapping[str, Any], batch_size: int, *, param: str = "batch_size") -> dict[str, Any]:
    """``batch_size`` images in one sampler pass (one seed, one noise tensor): image latent nodes only."""
    if batch_size < 1:
        raise EditError(f"batch_size must be >= 1 (got {batch_size})", param)
    result = _copy(graph)
    found = [node_id for node_id, node in result.items() if node.get("class_type") in IMAGE_LATENT_CLASSES]
    if not found:
        raise EditError("the graph has no image latent node whose batch_size could be set", param)
    for node_id in found:
        if link_source(result[node_id]["inputs"].get("batch_size")) is not None:
            raise EditError(f"node {node_id} batch_size is fed by a link", param)
        result[node_id]["inputs"]["batch_size"] = batch_size
    return result
