"""``JobResult`` and ``OutputItem``: what a successful job returns (and what ``manifest.json`` stores)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, JsonValue

from handlers.contract._common import StrictModel
from handlers.contract._qa import JobQa, OutputQa, OutputRole

__all__ = [
    "ComfyUIUsed",
    "CustomNodeUsed",
    "JobResult",
    "LoraUsed",
    "ModelFileUsed",
    "OutputItem",
    "OutputKind",
    "Provenance",
    "RegisteredLora",
    "SeedUsed",
    "Timings",
    "Variation",
]


class OutputKind(StrEnum):
    IMAGE = "image"
    ANIMATED = "animated"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    LATENT = "latent"
    MODEL_3D = "3d"
    MODEL = "model"
    """A trained model file (a LoRA's ``.safetensors``)."""
    FILE = "file"


class Variation(StrictModel):
    """Which variation of a batch (``params.prompts`` x ``params.seeds``/``count``) made an output."""

    index: int = Field(ge=0, description="0-based, prompts outer, seeds inner")
    prompt: str | None = None
    seed: int | None = None


class OutputItem(StrictModel):
    """One output of one node: a stored file (``s3_uri``, ``url``), or ``text`` for text outputs."""

    node_id: str
    node_title: str | None = None
    kind: OutputKind
    filename: str | None = Field(
        default=None, description="the stored file's name: its extension is the stored format's (after conversion)"
    )
    temp: bool = Field(default=False, description="a temp (preview) output, returned only with include_temp")
    mime: str | None = None
    bytes: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    duration_s: float | None = Field(default=None, ge=0)
    s3_uri: str | None = Field(default=None, pattern=r"^s3://")
    url: str | None = Field(default=None, description="presigned GET URL")
    text: str | None = None
    base64: str | None = Field(default=None, description="inline content when under output.inline_base64_max_bytes")
    variation: Variation | None = Field(default=None, description="the prompt and seed that made it, in a batch")
    qa: OutputQa | None = Field(default=None, description="automated quality checks (input.qa)")
    role: OutputRole | None = Field(default=None, description="thumbnail, poster, preview or waveform of a source")
    derived_from: str | None = Field(default=None, description="the sha256 of the output this one was made from")


class SeedUsed(StrictModel):
    """A seed the graph ran with: chosen by the caller, the template, or at random (``random``)."""

    node_id: str
    input: str
    value: int
    param: str | None = Field(default=None, description="the parameter that set it, if any")
    random: bool = False


class Timings(StrictModel):
    """Per-phase wall time in milliseconds; ``None`` where a phase did not happen."""

    stage_ms: int | None = Field(default=None, ge=0, description="fetching and staging input media")
    queue_wait_ms: int | None = Field(default=None, ge=0, description="from /prompt to execution_start")
    execution_ms: int | None = Field(default=None, ge=0)
    nodes_ms: dict[str, int] = Field(default_factory=dict, description="node id -> execution time")
    upload_ms: int | None = Field(default=None, ge=0)
    total_ms: int | None = Field(default=None, ge=0)
    vram_free_before_bytes: int | None = Field(
        default=None, ge=0, description="free VRAM (ComfyUI's /system_stats, first device) when the prompt was queued"
    )
    vram_free_after_bytes: int | None = Field(default=None, ge=0, description="free VRAM when the prompt ended")
    vram_total_bytes: int | None = Field(default=None, ge=0)
    vram_freed: bool = Field(default=False, description="the worker asked ComfyUI to unload models before this prompt")
    oom_retries: int = Field(default=0, ge=0, description="runs retried after ComfyUI ran out of memory (at most 1)")


class RegisteredLora(StrictModel):
    """A trained LoRA as an entry of a character's pack (``register_as``): the fields of ``character.json``'s
    ``lora``, plus where the file is and its digest, so a worker can provision and verify it."""

    character: str
    file: str = Field(description="its name in ComfyUI's loras folder: '<character>/<file name>'")
    s3_uri: str = Field(pattern=r"^s3://")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    trigger_words: list[str] = Field(default_factory=list)
    strength_model: float = 1.0
    strength_clip: float = 1.0


class ModelFileUsed(StrictModel):
    """A model file a node loads, as the graph names it; ``sha256`` from the image's lock where it pins the file."""

    node_id: str
    input: str
    file: str
    folder: str | None = Field(default=None, description="its models folder, when the lock knows the file")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class LoraUsed(StrictModel):
    node_id: str
    name: str
    strength_model: float | None = None
    strength_clip: float | None = None


class CustomNodeUsed(StrictModel):
    """A custom node pack the graph used (from ``/object_info``'s ``python_module``), at its pinned commit."""

    name: str
    repo: str | None = None
    commit: str | None = None
    classes: list[str] = Field(default_factory=list)


class ComfyUIUsed(StrictModel):
    version: str | None = Field(default=None, description="from /system_stats")
    commit: str | None = Field(default=None, description="the commit the image pins (its lock)")
    python: str | None = None
    pytorch: str | None = None


class Provenance(StrictModel):
    """How the outputs were made: enough to tell, and to run again, what produced them."""

    template: str | None = None
    character: str | None = None
    workflow: str = Field(description="'template', 'api' or 'ui': where the graph came from")
    params: dict[str, JsonValue] = Field(
        default_factory=dict, description="every parameter as bound (defaults and random seeds resolved)"
    )
    edits: dict[str, JsonValue] = Field(
        default_factory=dict, description="the graph edits asked for (loras, aspect_ratio, seeds, prompts, ...)"
    )
    overrides: dict[str, JsonValue] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    models: list[ModelFileUsed] = Field(default_factory=list)
    loras: list[LoraUsed] = Field(default_factory=list, description="every LoRA loader in the graph as run")
    comfyui: ComfyUIUsed = Field(default_factory=ComfyUIUsed)
    custom_nodes: list[CustomNodeUsed] = Field(default_factory=list)
    relay_version: str | None = None
    graph_sha256: str | None = Field(default=None, description="sha256 of the API graph as queued (canonical JSON)")
    lock: str | None = Field(default=None, description="the lock file the sha256s and commits come from")


class JobResult(StrictModel):
    job_id: str
    prompt_id: str | None = None
    outputs: list[OutputItem] = Field(default_factory=list)
    seeds: list[SeedUsed] = Field(default_factory=list)
    timings: Timings = Field(default_factory=Timings)
    warnings: list[str] = Field(default_factory=list)
    registered: RegisteredLora | None = Field(default=None, description="the trained LoRA's pack entry (register_as)")
    manifest_uri: str | None = Field(default=None, description="s3://…/manifest.json, written last (commit marker)")
    qa: JobQa | None = Field(default=None, description="the job's QA verdict and every attempt's")
    input_digest: str | None = Field(
        default=None, description="sha256 of the job's input: a job id reused for another input is a conflict"
    )
    provenance: Provenance | None = Field(default=None, description="how the outputs were made")
