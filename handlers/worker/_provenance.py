"""How a job's outputs were made (:class:`Provenance`), built from what the worker already holds: the job, the
bound workflow, the live ``/object_info`` and ``/system_stats``, and the image's lock.

Pure: no I/O here (the lock is read once by :func:`read_lock`, in a thread, by the runtime). Model sha256s and
custom node commits come from the lock the image was built from, where it pins them: hashing multi-gigabyte
weights on every job would cost minutes, and the image's fetcher has already verified them against the lock.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from handlers.contract import (
    ComfyUIUsed,
    CustomNodeUsed,
    JobInput,
    LoraUsed,
    ModelFileUsed,
    Provenance,
)
from handlers.image import ImageLock, LockError, load_lock
from handlers.workflow import EDIT_PARAMS, BoundWorkflow, Catalogue

__all__ = ["build_provenance", "read_lock", "relay_version"]

logger = logging.getLogger("handlers.worker.provenance")

#: Input values that name a model file (what ComfyUI's folder_paths lists for its loaders).
MODEL_SUFFIXES: Final = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx", ".sft")
_LORA_LOADERS: Final = frozenset({"LoraLoader", "LoraLoaderModelOnly"})
_CUSTOM_PREFIX: Final = "custom_nodes."


@functools.cache
def relay_version() -> str | None:
    try:
        return importlib.metadata.version("comfy-relay")
    except importlib.metadata.PackageNotFoundError:
        return None


def read_lock(path: Path | None) -> ImageLock | None:
    """The image's lock, or ``None`` (logged) when there is none or it cannot be read: provenance then says less,
    the job still runs. Blocking: run in a thread."""
    if path is None:
        return None
    try:
        return load_lock(path)
    except LockError as exc:
        logger.warning("no model digests or node commits in results: %s", exc)
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _model_files(graph: Mapping[str, Any], lock: ImageLock | None) -> list[ModelFileUsed]:
    found: list[ModelFileUsed] = []
    for node_id, node in graph.items():
        for name, value in ((node.get("inputs") or {}) if isinstance(node, Mapping) else {}).items():
            if not isinstance(value, str) or not value.lower().endswith(MODEL_SUFFIXES):
                continue
            wanted = value.replace("\\", "/")
            pins = [m for m in (lock.models if lock else ()) if m.id == wanted or m.id.endswith("/" + wanted)]
            digests = {m.sha256 for m in pins}
            pin = pins[0] if pins and len(digests) == 1 else None
            found.append(
                ModelFileUsed(
                    node_id=str(node_id),
                    input=name,
                    file=value,
                    folder=pin.folder if pin is not None and len(pins) == 1 else None,
                    sha256=pin.sha256 if pin is not None else None,
                )
            )
    return found


def _loras(graph: Mapping[str, Any]) -> list[LoraUsed]:
    return [
        LoraUsed(
            node_id=str(node_id),
            name=str(inputs.get("lora_name")),
            strength_model=_number(inputs.get("strength_model")),
            strength_clip=_number(inputs.get("strength_clip")),
        )
        for node_id, node in graph.items()
        if isinstance(node, Mapping) and node.get("class_type") in _LORA_LOADERS
        for inputs in [node.get("inputs") or {}]
    ]


def _custom_nodes(graph: Mapping[str, Any], catalogue: Catalogue, lock: ImageLock | None) -> list[CustomNodeUsed]:
    packs: dict[str, set[str]] = {}
    for node in graph.values():
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        if not isinstance(class_type, str) or class_type not in catalogue:
            continue
        module = catalogue[class_type].python_module
        if module.startswith(_CUSTOM_PREFIX):
            # ComfyUI names a pack by its folder; a folder may carry "@<version>" from the manager.
            folder = module.removeprefix(_CUSTOM_PREFIX).split(".", 1)[0].split("@", 1)[0]
            packs.setdefault(folder, set()).add(class_type)
    pins = {pin.name: pin for pin in (lock.custom_nodes if lock else ())}
    used = []
    for folder in sorted(packs):
        pin = pins.get(folder)
        used.append(
            CustomNodeUsed(
                name=folder,
                repo=pin.repo if pin else None,
                commit=pin.commit if pin else None,
                classes=sorted(packs[folder]),
            )
        )
    return used


def _comfyui(system_stats: Mapping[str, Any] | None, lock: ImageLock | None) -> ComfyUIUsed:
    system = (system_stats or {}).get("system")
    info: Mapping[str, Any] = system if isinstance(system, Mapping) else {}

    def text(key: str) -> str | None:
        value = info.get(key)
        return str(value) if value not in (None, "") else None

    return ComfyUIUsed(
        version=text("comfyui_version"),
        commit=lock.comfyui.commit if lock else None,
        python=text("python_version"),
        pytorch=text("pytorch_version"),
    )


def graph_digest(graph: Mapping[str, Any]) -> str:
    text = json.dumps(graph, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def build_provenance(
    job: JobInput,
    bound: BoundWorkflow,
    catalogue: Catalogue,
    *,
    system_stats: Mapping[str, Any] | None = None,
    lock: ImageLock | None = None,
    lock_path: Path | None = None,
) -> Provenance:
    """The job's :class:`Provenance`. ``bound.graph`` is the graph as bound (before the per-run file names and
    staged media paths, which differ on every attempt), so its digest names the work, not the attempt."""
    if job.template is not None:
        source = "template"
    else:
        assert job.workflow_format is not None
        source = job.workflow_format.value
    edits = {k: v for k, v in job.params.items() if k in EDIT_PARAMS and k not in bound.params}
    return Provenance(
        template=job.template,
        character=job.character,
        workflow=source,
        params=dict(bound.params),
        edits=edits,
        overrides=dict(job.overrides),
        labels=dict(job.labels),
        models=_model_files(bound.graph, lock),
        loras=_loras(bound.graph),
        comfyui=_comfyui(system_stats, lock),
        custom_nodes=_custom_nodes(bound.graph, catalogue, lock),
        relay_version=relay_version(),
        graph_sha256=graph_digest(bound.graph),
        lock=str(lock_path) if lock is not None and lock_path is not None else None,
    )
