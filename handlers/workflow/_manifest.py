"""The files of a template folder, as pydantic models: ``template.json`` (the parameter manifest). A character's
``character.json`` is in ``_character``."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

from handlers.contract import QaOptions
from handlers.workflow._coerce import (
    RANDOM_SEED,
    SEED_MAX,
    coerce_bool,
    coerce_choice,
    coerce_float,
    coerce_int,
    coerce_seed,
    coerce_string,
)

__all__ = [
    "MEDIA_TYPES",
    "Bind",
    "CustomNode",
    "ModelFile",
    "ParamType",
    "TemplateManifest",
    "TemplateParam",
]

_PARAM_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_MODEL_FOLDER = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$"


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http(s) URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamType(StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    SEED = "seed"
    IMAGE = "image"
    MASK = "mask"
    AUDIO = "audio"
    VIDEO = "video"
    CHOICE = "choice"


#: Parameters whose value names an input file (a job's ``media`` item): the worker stages it, then rewrites
#: the bound node inputs to the staged file name.
MEDIA_TYPES = frozenset({ParamType.IMAGE, ParamType.MASK, ParamType.AUDIO, ParamType.VIDEO})


class Bind(_Model):
    """A node input a parameter sets: ``node`` is a node id or a unique title, ``input`` an input name. For media
    parameters this is the loader's file input (``LoadImage.image``, ``LoadAudio.audio``)."""

    node: str = Field(min_length=1)
    input: str = Field(min_length=1)


class TemplateParam(_Model):
    """A named, typed parameter of a template."""

    name: Annotated[str, StringConstraints(pattern=_PARAM_NAME)]
    type: ParamType
    description: str = ""
    default: JsonValue = None
    """``None``: no default (the graph's own value stays unless the parameter is required)."""
    required: bool = False
    min: float | None = None
    max: float | None = None
    step: float | None = Field(
        default=None, gt=0, description="int values must be min + a multiple of it; a UI hint for floats"
    )
    choices: list[JsonValue] | None = Field(default=None, min_length=1)
    binds: list[Bind] = Field(default_factory=list)
    """Node inputs this parameter sets; may be empty when the graph holds ``"{{name}}"`` placeholders instead."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type is ParamType.CHOICE and not self.choices:
            raise ValueError(f"parameter {self.name!r}: type choice needs choices")
        if self.choices and self.type not in {ParamType.CHOICE, ParamType.STRING, ParamType.INT, ParamType.FLOAT}:
            raise ValueError(f"parameter {self.name!r}: choices do not apply to type {self.type.value}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"parameter {self.name!r}: min {self.min} > max {self.max}")
        if self.type is ParamType.SEED and self.default not in (None, RANDOM_SEED):
            raise ValueError(f"parameter {self.name!r}: a seed's default can only be {RANDOM_SEED} (random)")
        if self.required and self.default is not None:
            raise ValueError(f"parameter {self.name!r}: required parameters take no default")
        if self.default is not None:
            try:
                self.coerce(self.default)
            except ValueError as exc:
                raise ValueError(f"parameter {self.name!r}: default {exc}") from None
        return self

    def _on_step(self, value: int) -> None:
        """Refuse an int off the step grid (``width=1001`` with step 8) instead of letting ComfyUI round it."""
        if self.step is None or not float(self.step).is_integer():
            return
        step, base = int(self.step), int(self.min or 0)
        if (value - base) % step == 0:
            return
        below = value - (value - base) % step
        near = " or ".join(str(v) for v in (below, below + step) if self.max is None or v <= self.max)
        grid = f"a multiple of {step}" if base == 0 else f"{base} plus a multiple of {step}"
        raise ValueError(f"must be {grid} (got {value}; nearest: {near})")

    @property
    def is_media(self) -> bool:
        return self.type in MEDIA_TYPES

    def coerce(self, value: Any) -> Any:
        """``value`` as this parameter's type, within its bounds and choices; ``ValueError`` otherwise. A seed of
        -1 stays -1 (the binder draws the random seed)."""
        result: Any
        match self.type:
            case ParamType.INT:
                result = coerce_int(value, self.min, self.max)
                self._on_step(result)
            case ParamType.FLOAT:
                result = coerce_float(value, self.min, self.max)
            case ParamType.BOOL:
                return coerce_bool(value)
            case ParamType.SEED:
                return coerce_seed(value, self.min, self.max)
            case ParamType.CHOICE:
                assert self.choices is not None  # checked at load
                return coerce_choice(value, self.choices)
            case ParamType.STRING:
                result = coerce_string(value)
            case _:  # media: the name of a media item (or of a file already in ComfyUI's input folder)
                result = coerce_string(value)
                if not result or result.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", result):
                    raise ValueError(f"must name a media item or an input file (got {result!r})")
        if self.choices:
            return coerce_choice(result, self.choices)
        return result

    def json_schema(self) -> dict[str, Any]:
        """This parameter as a JSON Schema property."""
        schema: dict[str, Any]
        match self.type:
            case ParamType.INT:
                schema = {"type": "integer"}
            case ParamType.FLOAT:
                schema = {"type": "number"}
            case ParamType.BOOL:
                schema = {"type": "boolean"}
            case ParamType.SEED:
                schema = {
                    "type": "integer",
                    "minimum": RANDOM_SEED,
                    "maximum": SEED_MAX if self.max is None else self.max,
                }
            case ParamType.CHOICE:
                schema = {}
            case ParamType.STRING:
                schema = {"type": "string"}
            case _:
                schema = {"type": "string", "contentMediaType": f"{self.type.value}/*", "format": "media-name"}
        if self.type in {ParamType.INT, ParamType.FLOAT}:
            if self.min is not None:
                schema["minimum"] = self.min
            if self.max is not None:
                schema["maximum"] = self.max
            if self.step is not None:
                schema["multipleOf"] = self.step
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.description:
            schema["description"] = self.description
        if self.default is not None:
            schema["default"] = self.default
        schema["x-param-type"] = self.type.value
        return schema


class ModelFile(_Model):
    """A model file the template needs in the worker image (or on the network volume)."""

    file: str = Field(min_length=1, description="file name as the loader sees it, e.g. sd_xl_base_1.0.safetensors")
    folder: Annotated[str, StringConstraints(pattern=_MODEL_FOLDER)] = Field(
        description="ComfyUI models folder: checkpoints, loras, vae, ..."
    )
    url: HttpUrl
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None


class CustomNode(_Model):
    """A custom node pack, pinned to a commit so the image is reproducible."""

    repo: HttpUrl
    commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
    name: str | None = None


class TemplateManifest(_Model):
    """``template.json``: what the template is and which parameters it takes."""

    name: str = Field(min_length=1)
    description: str = ""
    kind: str = Field(min_length=1, description="image, video, audio, train, ...")
    params: list[TemplateParam] = Field(default_factory=list)
    models: list[ModelFile] = Field(default_factory=list)
    custom_nodes: list[CustomNode] = Field(default_factory=list)
    qa: QaOptions | None = Field(default=None, description="the QA policy and thresholds of jobs that give none")
    placeholders: dict[Annotated[str, StringConstraints(min_length=3, max_length=128)], str] = Field(
        default_factory=dict,
        description="the graph's own placeholder strings (e.g. '__CHORUS_PROMPT__') -> the parameter each stands for; "
        "a whole input value equal to one is bound like '{{name}}'",
    )
    exclusive: bool = Field(
        default=False,
        description="runs alone on its worker: no other prompt is queued beside it (kind 'train' always is)",
    )
    family: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")] | None = Field(
        default=None,
        description="model family (sdxl, flux, wan, ...): a worker configured to free VRAM between families does "
        "so when the next prompt's family differs",
    )
    free_vram: bool = Field(default=False, description="ask ComfyUI to unload models and free memory before it runs")

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [p.name for p in self.params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"parameter names must be unique: {', '.join(duplicates)}")
        unknown = sorted(f"{text!r} -> {name!r}" for text, name in self.placeholders.items() if name not in names)
        if unknown:
            raise ValueError(f"placeholders must name a declared parameter: {', '.join(unknown)}")
        return self

    def param(self, name: str) -> TemplateParam | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def runs_alone(self) -> bool:
        """Exclusive by declaration or by kind: training holds the GPU for its whole run."""
        return self.exclusive or self.kind == "train"
