"""Check a job before the GPU is touched: template lookup, parameter binding, UI → API conversion and graph
validation against a bundled ``/object_info`` snapshot.

The snapshot (``catalogue.json`` beside this module, or ``RELAY_OBJECT_INFO``) holds ComfyUI's core node classes
and the classes the project's workflows use. The live worker may have more (custom nodes), so dispatch never rejects
a graph for what the snapshot does not know:

- a graph with a class the snapshot lacks is not validated (a warning says which classes), and a UI graph that
  needs such a class for conversion is left for the worker to convert;
- a combo whose options are the deployment's files (model lists: empty or file names in the snapshot, or a value
  that names a model file) is not checked, since which models a worker has is not the snapshot's business.

Everything else - missing required inputs, values out of range, unknown combo values, broken links - is rejected
here exactly as ComfyUI would reject it, and never costs a GPU start.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final

from handlers.contract import GraphFormat, JobInput
from handlers.dispatch._errors import InvalidJobError

__all__ = ["DEFAULT_CATALOGUE", "InputValidator"]

DEFAULT_CATALOGUE: Final = Path(__file__).with_name("catalogue.json")
_FILE_SUFFIXES: Final = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx", ".sft")


def _names_a_file(value: Any) -> bool:
    return isinstance(value, str) and value.lower().endswith(_FILE_SUFFIXES)


def _inventory_combo(options: tuple[Any, ...] | None, value: Any) -> bool:
    """Whether a combo's options are the deployment's files: the snapshot lists none, lists files, or the value
    names a model file (``VAELoader`` lists ``pixel_space`` beside whatever is in ``models/vae``)."""
    if options is None:
        return False
    return not options or _names_a_file(value) or any(_names_a_file(o) for o in options)


@dataclass
class InputValidator:
    """``catalogue_path``: an ``/object_info`` JSON file; ``workflows``: the template root (``None``: templates are
    resolved by the worker only)."""

    catalogue_path: Path = DEFAULT_CATALOGUE
    workflows: Path | None = None

    @cached_property
    def _catalogue(self) -> Any:
        # Imported on first use: the workflow package is only needed when a job is checked.
        from handlers.workflow import Catalogue  # noqa: PLC0415

        return Catalogue(json.loads(self.catalogue_path.read_text()))

    def check(self, job: JobInput, job_id: str) -> list[str]:
        """Raise :class:`InvalidJobError` if the job cannot run; return warnings about what was not checked."""
        from handlers.workflow import (  # noqa: PLC0415
            BindingError,
            ConversionError,
            TemplateError,
            job_params,
            load_template,
            output_namer,
            resolve_graph,
            resolve_template,
            ui_to_api,
        )

        warnings: list[str] = []
        media = [m.name for m in job.media]
        rng = random.Random(0)  # noqa: S311 (random seeds only need to exist for validation)
        try:
            if job.template is not None:
                if self.workflows is None:
                    return ["templates are not available to dispatch: the worker resolves the template"]
                template = load_template(self.workflows, job.template, job.character)
                params = job_params(job, job_id)
                bound = resolve_template(template, params, job.overrides, media_names=media, rng=rng)
            else:
                assert job.workflow is not None
                api_graph: Mapping[str, Any] = job.workflow
                if job.workflow_format is GraphFormat.UI:
                    unknown = self._unknown_ui_classes(job.workflow)
                    if unknown:
                        return [f"not validated: the catalogue lacks {', '.join(unknown)} (the worker will check)"]
                    api_graph = ui_to_api(job.workflow, self._catalogue, rng=rng)
                bound = resolve_graph(api_graph, job.params, job.overrides, media_names=media, rng=rng)
            graph = bound.graph
            # output.name as the worker checks it (collisions among the output nodes the catalogue knows).
            catalogue = self._catalogue
            outputs = [
                node_id
                for node_id, node in graph.items()
                if node.get("class_type") in catalogue and catalogue[node["class_type"]].output_node
            ]
            output_namer(
                job.output.name,
                bound,
                job_id=job_id,
                labels=job.labels,
                output_nodes=outputs,
                include_temp=job.output.include_temp,
            )
        except (TemplateError, BindingError, ConversionError) as exc:
            raise InvalidJobError(exc.to_job_error(job_id)) from exc
        warnings.extend(self._validate_graph(graph, job_id))
        return warnings

    def _unknown_ui_classes(self, workflow: Mapping[str, Any]) -> list[str]:
        names: set[str] = set()
        nodes = list(workflow.get("nodes") or [])
        definitions = workflow.get("definitions") or {}
        subgraph_ids = {str(s.get("id")) for s in definitions.get("subgraphs", []) if isinstance(s, dict)}
        for subgraph in definitions.get("subgraphs", []):
            if isinstance(subgraph, dict):
                nodes.extend(subgraph.get("nodes") or [])
        for node in nodes:
            kind = node.get("type") if isinstance(node, dict) else None
            if isinstance(kind, str) and kind not in subgraph_ids and kind not in self._catalogue:
                names.add(kind)
        # Frontend-only nodes never reach the API and need no catalogue entry.
        return sorted(names - {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})

    def _validate_graph(self, graph: Mapping[str, Any], job_id: str) -> list[str]:
        from handlers.workflow import validate  # noqa: PLC0415

        unknown = sorted(
            {
                str(node.get("class_type"))
                for node in graph.values()
                if isinstance(node, dict) and node.get("class_type") not in self._catalogue
            }
        )
        if unknown:
            return [f"not validated: the catalogue lacks {', '.join(unknown)} (the worker will check)"]
        full = validate(graph, self._catalogue)
        inventory = []
        for issue in full.errors:
            if issue.type == "value_not_in_list" and issue.class_type in self._catalogue and issue.input:
                spec = self._catalogue[issue.class_type].input(issue.input)
                if spec is not None and _inventory_combo(spec.options, issue.extra_info.get("received_value")):
                    inventory.append(issue)
        report = full.without(inventory)
        if report.valid:
            return [str(w) for w in report.warnings]
        # The worker reports its own check through the same method: one invalid graph, one message.
        raise InvalidJobError(report.to_job_error(job_id))
