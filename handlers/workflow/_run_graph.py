"""The last pure step before a graph leaves for ComfyUI: one attempt of one job, its media staged.

Everything the worker used to rewrite in place lives here, so the worker only does I/O (stage, queue, follow) and
what a run's graph looks like can be read, and tested, in one function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.workflow._binding import BoundWorkflow
from handlers.workflow._output_prefix import job_filename_prefix, prefix_input

__all__ = ["prepare_run"]

#: Output nodes that write ``<folder>/<prefix>_<time>.png`` without creating subfolders (ComfyUI 0.3.64's
#: LossGraphNode): a prefix naming a folder makes them fail, so theirs stays flat (``<job id>_<attempt>_<prefix>``).
_FLAT_PREFIX_NODES = frozenset({"LossGraphNode"})


def prepare_run(
    bound: BoundWorkflow, *, job_id: str, attempt: str, staged: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A copy of ``bound.graph`` ready to queue for one attempt of job ``job_id``:

    - media inputs name the staged files (``staged``: media name -> the name ComfyUI's loaders see, such as
      ``"<job id>/face.png"``): exactly the inputs binding bound to media - media parameters, and file inputs
      (per the catalogue) whose value names a media item; no other input, whatever its value;
    - every ``filename_prefix`` (and a model saver's ``prefix``: ``SaveLoRANode``) is put under
      ``<job id>/<attempt>/``. Two reasons: ComfyUI answers an output node
      whose inputs did not change from its cache, naming the files of the earlier run, which the worker has
      removed; a prefix unique to the attempt makes the save node run again (its upstream nodes stay cached). And
      each job's files land in a folder of their own (``_FLAT_PREFIX_NODES`` keep a flat, still unique, prefix).
    """
    names = dict(staged or {})
    graph = bound.with_staged(names)
    for node in graph.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        name = prefix_input(node)
        prefix = inputs.get(name)
        if isinstance(prefix, str):
            # Normalised, and '..' refused (resolve already reported it as invalid_input): never outside the job.
            full = job_filename_prefix(prefix, job_id, attempt)
            flat = node.get("class_type") in _FLAT_PREFIX_NODES
            inputs[name] = full.replace("/", "_") if flat else full
    return graph
