"""Where one job's files meet ComfyUI's: on a disk the worker shares with ComfyUI, or over ComfyUI's HTTP routes.

The job run asks the same questions either way (where to stage inputs, how ComfyUI gets them, where an output's
file is, which folders to clean) and :func:`job_folders` picks the answers once, from the configuration:

- **shared disk** (``COMFYUI_OUTPUT_DIR`` set): outputs are read where ComfyUI wrote them and removed with the
  job; an earlier run of the same prompt whose files are gone must run again (:meth:`JobFolders.outputs_lost`).
- **over HTTP**: outputs are fetched from ``/view`` into the job's scratch mirror of ComfyUI's folders.

Inputs are independent of outputs: staged into ``COMFYUI_INPUT_DIR`` when it is set, else into the scratch folder
and handed over through ComfyUI's upload route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.worker._config import WorkerConfig
from handlers.worker._outputs import ComfyDirs, FileRef, collect_node_outputs, resolve_ref
from handlers.worker._staging import StagedMedia
from handlers.worker._storage import UploadFailed
from handlers.worker.comfy import ComfyClient, ComfyUIError

__all__ = ["JobFolders", "job_folders"]


@dataclass(frozen=True)
class JobFolders:
    """One job's folders. ``scratch`` is the job's own folder (created by the run, removed with it)."""

    comfy: ComfyClient
    job_id: str
    scratch: Path
    input_dir: Path
    """Where staged inputs go: ``<input_dir>/<job id>/``."""
    dirs: ComfyDirs
    """Where output files are read: ComfyUI's own folders, or the job's mirror of them."""
    shared_outputs: bool
    inputs_over_http: bool

    @property
    def output_roots(self) -> tuple[Path, ...]:
        """ComfyUI's folders in which the job's tracked outputs are removed afterwards (shared disk only)."""
        return (self.dirs.output, self.dirs.temp) if self.shared_outputs else ()

    @property
    def leftovers(self) -> tuple[Path, ...]:
        """Trees removed when the job ends: its scratch folder, and the per-job output folder that
        ``prepare_run``'s prefixes create in a shared output folder (its files go with the tracked outputs)."""
        return (self.scratch, self.dirs.output / self.job_id) if self.shared_outputs else (self.scratch,)

    async def hand_over(self, staged: Mapping[str, StagedMedia]) -> None:
        """Make the staged inputs visible to ComfyUI, in the same per-job subfolder (a no-op on a shared disk)."""
        if not self.inputs_over_http:
            return
        for item in staged.values():
            data = await asyncio.to_thread(item.path.read_bytes)
            subfolder = item.comfy_name.rpartition("/")[0] or self.job_id  # "<job id>" or "<job id>/character"
            await self.comfy.upload_image(item.path.name, data, subfolder=subfolder, overwrite=True)

    async def bring_outputs(self, node_id: str, ui: Mapping[str, Any], *, include_temp: bool) -> None:
        """Make one node's output files readable under :attr:`dirs` (fetched from ``/view`` when over HTTP)."""
        if self.shared_outputs:
            return
        for ref in collect_node_outputs(ui, node_id, include_temp=include_temp).files:
            try:
                path = resolve_ref(ref, self.dirs)
            except ValueError as exc:
                raise UploadFailed(str(exc), retryable=False) from exc
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            try:
                await self.comfy.view_to_file(ref.filename, ref.subfolder, ref.type, path)
            except ComfyUIError as exc:
                raise UploadFailed(f"cannot read output {ref.filename} from ComfyUI: {exc}") from exc

    async def outputs_lost(self, prompt_id: str) -> bool:
        """Whether ComfyUI holds a finished run of this prompt whose files this worker already removed (a retried
        job after a failed upload): such a run cannot be adopted, it must run again. Over HTTP the worker removes
        nothing of ComfyUI's, so an earlier run's files are still there."""
        if not self.shared_outputs:
            return False
        entry = (await self.comfy.history(prompt_id)).get(prompt_id)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("outputs"), Mapping):
            return False
        refs = [
            ref
            for node_id, ui in entry["outputs"].items()
            if isinstance(ui, Mapping)
            for ref in collect_node_outputs(ui, str(node_id)).files
        ]
        return await asyncio.to_thread(_any_missing, refs, self.dirs)


def _any_missing(refs: Iterable[FileRef], dirs: ComfyDirs) -> bool:
    for ref in refs:
        try:
            if not resolve_ref(ref, dirs).is_file():
                return True
        except ValueError:
            return True
    return False


def job_folders(config: WorkerConfig, comfy: ComfyClient, job_id: str, scratch: Path) -> JobFolders:
    """The folders of one job under ``config`` (no I/O: the run creates ``scratch``)."""
    input_dir = config.comfyui_input_dir or scratch / "input"
    if config.comfyui_output_dir is not None:
        temp = config.comfyui_temp_dir or config.comfyui_output_dir.parent / "temp"
        dirs = ComfyDirs(config.comfyui_output_dir, temp, input_dir)
    else:
        dirs = ComfyDirs(scratch / "output", scratch / "temp", scratch / "view-input")
    return JobFolders(
        comfy=comfy,
        job_id=job_id,
        scratch=scratch,
        input_dir=input_dir,
        dirs=dirs,
        shared_outputs=config.comfyui_output_dir is not None,
        inputs_over_http=config.comfyui_input_dir is None,
    )
