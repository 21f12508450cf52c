"""``JobInput``: what a caller sends as a RunPod job's ``input``. Its JSON Schema is generated from here."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from handlers.contract._common import (
    NAME_PATTERN,
    PARAM_NAME_PATTERN,
    JobId,
    Loc,
    StrictModel,
    json_shape_problem,
    with_cross_checks,
)
from handlers.contract._dataset import Dataset
from handlers.contract._output_name import NamePattern
from handlers.contract._qa import PreviewOptions, QaOptions
from handlers.contract._sources import S3_URI, HttpUrl, check_base64, one_source_problem, strip_base64

__all__ = [
    "MAX_GRAPH_NODES",
    "MAX_INLINE_BASE64_BYTES",
    "MAX_JOB_INPUT_BYTES",
    "MAX_LABELS",
    "MAX_MEDIA_ITEMS",
    "MAX_OVERRIDES",
    "MAX_PARAMS",
    "MAX_PRESIGN_SECONDS",
    "MAX_TIMEOUT_S",
    "GraphFormat",
    "JobInput",
    "LegacyImage",
    "MediaItem",
    "OutputFormat",
    "OutputOptions",
    "ProgressWebhook",
    "graph_format",
    "job_input_schema",
    "split_override_key",
]

MAX_TIMEOUT_S = 7 * 24 * 3600
"""RunPod's own ceiling for a job's execution timeout."""
DEFAULT_TIMEOUT_S = 600
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""SigV4 presigned URLs cannot outlive 7 days."""
MAX_INLINE_BASE64_BYTES = 7_000_000
"""Raw bytes: base64 adds a third, and RunPod refuses results over 10 MB, so 7 MB leaves room for the rest."""
DEFAULT_INLINE_BASE64_BYTES = 0
MAX_JOB_INPUT_BYTES = 10_000_000
"""A whole job as JSON: RunPod's own ``/run`` limit, checked before anything parses it."""
MAX_MEDIA_ITEMS = 64
MAX_PARAMS = 256
MAX_OVERRIDES = 1024
MAX_LABELS = 32
MAX_GRAPH_NODES = 5000
"""Nodes of one graph (API nodes, or a UI workflow's nodes): the largest real workflows hold a few hundred."""

_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_PREFIX = r"^(?:[A-Za-z0-9_.=-]+/)*[A-Za-z0-9_.=-]+/?$"
_TEMPLATE = r"^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$"


class GraphFormat(StrEnum):
    API = "api"
    UI = "ui"


def graph_format(graph: Mapping[str, Any]) -> GraphFormat:
    """A UI (saved) workflow has ``nodes`` and ``links`` lists; anything else is taken as API format."""
    if isinstance(graph.get("nodes"), list) and isinstance(graph.get("links"), list):
        return GraphFormat.UI
    return GraphFormat.API


def split_override_key(key: str) -> tuple[str, str]:
    """``"<node id or title>.<input>"`` split at the LAST dot: titles may contain dots and subgraph node ids
    contain colons (``"7:1.seed"``), input names never contain a dot."""
    node, sep, input_name = key.rpartition(".")
    if not sep or not node or not input_name:
        raise ValueError(f"override key {key!r} must be '<node id or title>.<input>'")
    return node, input_name


def _check_override_key(key: str) -> str:
    split_override_key(key)
    return key


MediaName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ParamName = Annotated[str, StringConstraints(pattern=PARAM_NAME_PATTERN)]
OverrideKey = Annotated[str, StringConstraints(min_length=3, max_length=512), AfterValidator(_check_override_key)]


class MediaItem(StrictModel):
    """An input file, from exactly one source. ``name`` is what parameters refer to; the worker stages the file
    under a per-job folder in ComfyUI's input directory."""

    name: MediaName
    url: HttpUrl | None = None
    base64: str | None = Field(default=None, description="base64 payload, or a data: URI")
    s3: str | None = Field(default=None, description="s3://bucket/key", pattern=S3_URI.pattern)
    mime: str | None = Field(default=None, pattern=r"^[\w.+-]+/[\w.+-]+$")

    @field_validator("base64")
    @classmethod
    def _valid_base64(cls, value: str | None) -> str | None:
        if value is not None:
            check_base64(strip_base64(value)[0])
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _one_source(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problem = one_source_problem(data, ("url", "base64", "s3"))
        result: Self = with_cross_checks(cls.__name__, data, handler, [problem] if problem else [])
        return result

    def payload(self) -> bytes:
        """The decoded bytes of a base64 item."""
        if self.base64 is None:
            raise ValueError(f"media {self.name!r} is not inline base64")
        return base64.b64decode("".join(strip_base64(self.base64)[0].split()))

    def declared_mime(self) -> str | None:
        """``mime`` if given, else what a data URI declared."""
        if self.mime is not None:
            return self.mime
        return strip_base64(self.base64)[1] if self.base64 is not None else None


class LegacyImage(StrictModel):
    """worker-comfyui's ``images: [{name, image}]`` (``image`` is base64 or a data URI): accepted and normalised into
    ``media``."""

    name: MediaName
    image: str

    @field_validator("image")
    @classmethod
    def _valid_image(cls, value: str) -> str:
        check_base64(strip_base64(value)[0])
        return value


class OutputFormat(StrEnum):
    """What ``output.format`` converts to: still images to png/jpeg/webp, audio to wav/flac."""

    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    WAV = "wav"
    FLAC = "flac"

    @property
    def is_audio(self) -> bool:
        return self in (OutputFormat.WAV, OutputFormat.FLAC)


class OutputOptions(StrictModel):
    """Where and how outputs are delivered."""

    bucket: str | None = Field(default=None, pattern=_BUCKET, description="S3 bucket (default: the worker's)")
    prefix: str | None = Field(default=None, pattern=_PREFIX, max_length=512, description="key prefix in the bucket")
    format: OutputFormat | None = Field(
        default=None,
        description="convert still images (png, jpeg, webp) or audio (wav, flac); absent keeps ComfyUI's",
    )
    quality: int | None = Field(default=None, ge=1, le=100, description="for jpeg/webp conversion")
    include_temp: bool = Field(default=False, description="also return temp outputs (PreviewImage etc.)")
    presign_seconds: int = Field(default=3600, ge=1, le=MAX_PRESIGN_SECONDS)
    inline_base64_max_bytes: int = Field(
        default=DEFAULT_INLINE_BASE64_BYTES,
        ge=0,
        le=MAX_INLINE_BASE64_BYTES,
        description="return outputs up to this size inline as base64 too (0: never)",
    )
    name: str | None = Field(
        default=None,
        max_length=512,
        description=(
            "key pattern under the prefix, e.g. 'projects/{project}/images/{sentence}': fields from labels or "
            "params (as bound), or {job_id} {node} {index} {ext} {variation} {seed} {prompt}; '.{ext}' is added "
            "when absent. Default: '<job id>/<node id>/<file>'"
        ),
    )
    strip_metadata: bool = Field(
        default=False,
        description="drop the workflow ComfyUI writes into files (PNG/WebP images, FLAC audio) for public delivery",
    )
    previews: PreviewOptions = Field(default_factory=PreviewOptions)

    @field_validator("name")
    @classmethod
    def _name_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            NamePattern.parse(value)
        return value

    @field_validator("prefix")
    @classmethod
    def _no_dot_segments(cls, value: str | None) -> str | None:
        if value is not None and any(part in {".", ".."} for part in value.split("/")):
            raise ValueError("must not contain '.' or '..' segments")
        return value


class ProgressWebhook(StrictModel):
    """Signed progress events POSTed while the job runs (see ``sign_webhook``)."""

    url: HttpUrl
    secret: str = Field(min_length=16, max_length=256, repr=False)
    min_interval_ms: int = Field(default=1000, ge=100, le=60_000, description="throttle between progress events")


_ITEM_LIMITS: dict[str, int] = {
    "workflow": MAX_GRAPH_NODES,
    "params": MAX_PARAMS,
    "overrides": MAX_OVERRIDES,
    "media": MAX_MEDIA_ITEMS,
    "images": MAX_MEDIA_ITEMS,
}


class JobInput(StrictModel):
    """A job: a workflow (inline API or UI graph, or a named template), its parameters, media and delivery."""

    workflow: dict[str, Any] | None = Field(default=None, description="API-format graph, or a UI (saved) workflow")
    template: str | None = Field(
        default=None, pattern=_TEMPLATE, description="'<kind>/<name>', e.g. 'image/sdxl-basic'"
    )
    character: str | None = Field(default=None, pattern=NAME_PATTERN, description="character-scoped template lookup")
    params: dict[ParamName, JsonValue] = Field(default_factory=dict, max_length=MAX_PARAMS)
    overrides: dict[OverrideKey, JsonValue] = Field(
        default_factory=dict,
        max_length=MAX_OVERRIDES,
        description='"<node id or title>.<input>": value, applied after params',
    )
    media: list[MediaItem] = Field(default_factory=list, max_length=MAX_MEDIA_ITEMS)
    images: list[LegacyImage] = Field(
        default_factory=list,
        max_length=MAX_MEDIA_ITEMS,
        description="worker-comfyui compatibility: moved into media",
        json_schema_extra={"deprecated": True},
    )
    output: OutputOptions = Field(default_factory=OutputOptions)
    labels: dict[ParamName, Annotated[str, StringConstraints(max_length=256)]] = Field(
        default_factory=dict,
        max_length=MAX_LABELS,
        description="the caller's own names for this job (project, sentence, ...): fields of output.name, and "
        "recorded in the manifest",
    )
    job_id: JobId | None = Field(default=None, description="idempotency key; default: RunPod's job id")
    timeout_s: int = Field(default=DEFAULT_TIMEOUT_S, ge=1, le=MAX_TIMEOUT_S)
    progress_webhook: ProgressWebhook | None = None
    dataset: Dataset | None = Field(
        default=None, description="LoRA training: the images (and captions) staged for the template's dataset parameter"
    )
    register_as: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="LoRA training: register the trained LoRA into this character's pack (returned with the result)",
    )
    qa: QaOptions | None = Field(
        default=None, description="automated output checks; default: the template's, else report"
    )

    @field_validator("workflow", "params", "overrides", "media", "images", mode="before")
    @classmethod
    def _bounded(cls, value: Any, info: ValidationInfo) -> Any:
        # Before any per-item work (pydantic's, ours, anything recursive): too many items, too deep, or not JSON
        # is one problem reported at once, never seconds of validation or a crash.
        limit = _ITEM_LIMITS[str(info.field_name)]
        items = value
        if info.field_name == "workflow" and isinstance(value, dict) and graph_format(value) is GraphFormat.UI:
            items = value.get("nodes")
        if isinstance(items, dict | list) and len(items) > limit:
            raise ValueError(f"has {len(items)} entries; at most {limit} are accepted")
        problem = json_shape_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("workflow")
    @classmethod
    def _graph_shape(cls, graph: dict[str, Any] | None) -> dict[str, Any] | None:
        if graph is None or graph_format(graph) is GraphFormat.UI:
            return graph
        if not graph:
            raise ValueError("is an empty graph")
        bad = [
            node_id
            for node_id, node in graph.items()
            if not (
                isinstance(node, dict)
                and isinstance(node.get("class_type"), str)
                and isinstance(node.get("inputs", {}), dict)
            )
        ]
        if bad:
            shown = ", ".join(repr(b) for b in bad[:10])
            raise ValueError(
                f"is neither a UI workflow (nodes + links) nor an API graph: node(s) {shown} lack a class_type "
                "string or an inputs object"
            )
        return graph

    @model_validator(mode="wrap")
    @classmethod
    def _cross_checks(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problems: list[tuple[Loc, str]] = []
        if isinstance(data, dict):
            if (data.get("workflow") is None) == (data.get("template") is None):
                problems.append(((), "give exactly one of workflow or template"))
            if data.get("character") is not None and data.get("template") is None:
                problems.append((("character",), "applies only with template"))
            if data.get("dataset") is not None:
                if data.get("template") is None:
                    problems.append((("dataset",), "applies only with a training template"))
                if isinstance(data.get("params"), dict) and "dataset" in data["params"]:
                    problems.append((("params", "dataset"), "give the dataset either here or as input.dataset"))
            if data.get("register_as") is not None and data.get("dataset") is None:
                problems.append((("register_as",), "applies only to a training job with a dataset"))
            # Per-item work only on lists within their bound (the field check reports a longer one), and linear.
            names: Counter[str] = Counter(
                item["name"]
                for key in ("media", "images")
                if isinstance(data.get(key), list) and len(data[key]) <= MAX_MEDIA_ITEMS
                for item in data[key]
                if isinstance(item, dict) and isinstance(item.get("name"), str)
            )
            duplicates = sorted(name for name, count in names.items() if count > 1)
            if duplicates:
                problems.append((("media",), f"names must be unique: {', '.join(duplicates)}"))
        result: Self = with_cross_checks(cls.__name__, data, handler, problems)
        if result.images:
            # Normalise the legacy field so everything downstream reads only ``media``.
            legacy = [MediaItem(name=i.name, base64=i.image) for i in result.images]
            object.__setattr__(result, "media", [*result.media, *legacy])
            object.__setattr__(result, "images", [])
        return result

    @property
    def workflow_format(self) -> GraphFormat | None:
        return None if self.workflow is None else graph_format(self.workflow)


def job_input_schema() -> dict[str, Any]:
    """The JSON Schema of a job's ``input``, generated from :class:`JobInput` (validation mode)."""
    schema = JobInput.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "comfy-relay job input"
    return schema
