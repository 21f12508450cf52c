"""Trained models as outputs: ComfyUI's ``SaveLoRANode`` writes its ``.safetensors`` and reports nothing, so the
worker finds the file itself once the prompt has run, by the name the graph gives it
(:func:`handlers.workflow.saved_models`), and reports it as an ``Output`` of its own under the ``models`` key.

The names come from the graph that ran, as ComfyUI's ``/history`` records it: a retry that adopted the prompt of an
earlier attempt finds that attempt's files, not the ones its own graph would have written. On a shared disk the
folder is searched (the name's step count may be unknown); over HTTP the predicted name is fetched from ``/view``
like any other output.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.worker.comfy import Output
from handlers.workflow import SavedModel, saved_models

if TYPE_CHECKING:
    from handlers.worker._folders import JobFolders

__all__ = ["trained_models"]

logger = logging.getLogger("handlers.worker.models")
MODELS_KEY = "models"


def _found_on_disk(output_dir: Path, saved: SavedModel) -> list[str]:
    folder = output_dir / saved.subfolder
    if not folder.is_dir():
        return []
    if saved.filename and (folder / saved.filename).is_file():
        return [saved.filename]
    return sorted(p.name for p in folder.glob(f"{saved.stem}_*.safetensors") if p.is_file())


async def _graph_that_ran(folders: JobFolders, prompt_id: str, graph: Mapping[str, Any]) -> Mapping[str, Any]:
    entry = (await folders.comfy.history(prompt_id)).get(prompt_id)
    prompt = entry.get("prompt") if isinstance(entry, Mapping) else None
    if isinstance(prompt, list) and len(prompt) > 2 and isinstance(prompt[2], Mapping):
        return prompt[2]
    return graph


async def trained_models(graph: Mapping[str, Any], folders: JobFolders, prompt_id: str) -> list[Output]:
    """One ``Output`` per model save node of the prompt ``prompt_id`` (queued from ``graph``, or adopted) whose
    file exists (shared disk) or is predicted (HTTP)."""
    if not saved_models(graph):
        return []
    graph = await _graph_that_ran(folders, prompt_id, graph)
    outputs = []
    for saved in saved_models(graph):
        if folders.shared_outputs:
            names = await asyncio.to_thread(_found_on_disk, folders.dirs.output, saved)
        else:
            names = [saved.filename] if saved.filename else []
        if not names:
            logger.warning("model node %s saved no file under %s/%s_*", saved.node_id, saved.subfolder, saved.stem)
            continue
        entries = [{"filename": name, "subfolder": saved.subfolder, "type": "output"} for name in names]
        node = graph[saved.node_id]
        outputs.append(Output(saved.node_id, saved.node_id, node.get("class_type"), saved.title, {MODELS_KEY: entries}))
    return outputs
