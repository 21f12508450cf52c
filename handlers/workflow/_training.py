"""What a training graph means for a job run, from the graph alone: where its dataset goes, which files its
save nodes write (ComfyUI never reports them), and which of its previews are results.

Core ComfyUI's ``SaveLoRANode`` writes ``<output>/<prefix>_<steps>_steps_<counter:05>_.safetensors`` and returns no
ui; ``LossGraphNode`` draws the loss curve into the temp folder. A job's ``prepare_run`` puts the prefix under the
job's own output folder, so the counter is always 1 and the name is known before the node runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final

from handlers.contract import JobInput, OutputItem, OutputKind, RegisteredLora

__all__ = [
    "DATASET_LOADERS",
    "DATASET_PARAM",
    "MODEL_SAVERS",
    "RESULT_PREVIEWS",
    "SavedModel",
    "dataset_folder",
    "is_training_graph",
    "job_params",
    "lora_pack_entry",
    "saved_models",
]

#: The template parameter a job's ``dataset`` fills with its staged folder.
DATASET_PARAM: Final = "dataset"
#: The template parameter the trigger word binds to (written into every caption too).
TRIGGER_PARAM: Final = "trigger_word"
#: Loaders that read a folder of the input directory (the folder a job's dataset is staged into).
DATASET_LOADERS: Final = frozenset({"LoadImageTextSetFromFolderNode", "LoadImageSetFromFolderNode"})
#: Nodes that save a trained model and report nothing, with the input that holds their output prefix.
MODEL_SAVERS: Final[Mapping[str, str]] = {"SaveLoRANode": "prefix"}
#: Output nodes whose temp image is a result, not a preview: the loss curve has nowhere else to go.
RESULT_PREVIEWS: Final = frozenset({"LossGraphNode"})
_TRAINERS: Final = frozenset({"TrainLoraNode"})


def dataset_folder(job_id: str) -> str:
    """The input subfolder (relative to ComfyUI's input directory) a job's dataset is staged into."""
    return f"{job_id}/{DATASET_PARAM}"


def job_params(job: JobInput, job_id: str) -> dict[str, Any]:
    """The params a job binds with (worker and dispatch alike): with a ``dataset``, its staged folder fills the
    ``dataset`` parameter and its ``trigger_word`` (if given) the trigger word."""
    params: dict[str, Any] = dict(job.params)
    if job.dataset is not None:
        params[DATASET_PARAM] = dataset_folder(job_id)
        if job.dataset.trigger_word is not None:
            params[TRIGGER_PARAM] = job.dataset.trigger_word
    return params


def is_training_graph(graph: Mapping[str, Any]) -> bool:
    return any(isinstance(n, Mapping) and n.get("class_type") in _TRAINERS for n in graph.values())


@dataclass(frozen=True, slots=True)
class SavedModel:
    """One model file a save node of the graph writes, as ComfyUI will name it."""

    node_id: str
    title: str | None
    subfolder: str
    """Folder under ComfyUI's output directory (``<job id>/<attempt>/loras``)."""
    filename: str
    """``<name>_<steps>_steps_00001_.safetensors``; steps are known when the graph fixes them."""
    stem: str
    """``<name>``: every file of this node starts with ``<stem>_`` (to find it when steps are not known)."""


def _linked_steps(graph: Mapping[str, Any], value: Any) -> int | None:
    """The steps a ``steps`` input will carry: a literal, or TrainLoraNode's ``steps`` output (its steps plus those
    of the LoRA it continues, which ComfyUI reads from that file's name)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not (isinstance(value, list) and len(value) == 2):
        return None
    source = graph.get(str(value[0]))
    if not isinstance(source, Mapping) or source.get("class_type") not in _TRAINERS or value[1] != 3:
        return None
    inputs = source.get("inputs", {})
    steps = inputs.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool):
        return None
    existing = inputs.get("existing_lora", "[None]")
    if isinstance(existing, str) and "_steps_" in existing:
        head = existing.split("_steps_", 1)[0].rsplit("_", 1)[-1]
        return steps + int(head) if head.isdigit() else None
    return steps


def saved_models(graph: Mapping[str, Any]) -> list[SavedModel]:
    """Every model file the graph's save nodes will write (after ``prepare_run``), in node order."""
    found = []
    for node_id, node in graph.items():
        if not isinstance(node, Mapping) or node.get("class_type") not in MODEL_SAVERS:
            continue
        inputs = node.get("inputs", {})
        prefix = inputs.get(MODEL_SAVERS[str(node["class_type"])])
        if not isinstance(prefix, str) or not prefix:
            continue
        path = PurePosixPath(prefix)
        stem = path.name
        steps = _linked_steps(graph, inputs.get("steps")) if "steps" in inputs else None
        name = f"{stem}_{steps}_steps_00001_.safetensors" if "steps" in inputs else f"{stem}_00001_.safetensors"
        if "steps" in inputs and steps is None:
            name = ""
        subfolder = "" if str(path.parent) == "." else str(path.parent)
        meta = node.get("_meta")
        title = meta.get("title") if isinstance(meta, Mapping) and isinstance(meta.get("title"), str) else None
        found.append(SavedModel(str(node_id), title, subfolder, name, stem))
    return found


def lora_pack_entry(character: str, outputs: list[OutputItem], trigger: str | None) -> RegisteredLora | None:
    """The pack entry of the job's trained LoRA (its first stored ``model`` output) for ``character``: the file is
    provisioned into ``loras/<character>/`` under its own name, so every trained version keeps its name."""
    for item in outputs:
        if item.kind is OutputKind.MODEL and item.s3_uri and item.sha256 and item.filename and item.bytes is not None:
            return RegisteredLora(
                character=character,
                file=f"{character}/{item.filename}",
                s3_uri=item.s3_uri,
                sha256=item.sha256,
                bytes=item.bytes,
                trigger_words=[trigger] if trigger else [],
            )
    return None
