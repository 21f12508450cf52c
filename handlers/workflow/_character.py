"""A character pack: ``workflows/<character>/character.json``, one typed manifest per character.

It names everything that makes the character: LoRA(s) with trigger words and strengths, reference face images, a
voice sample with its transcript, and parameter defaults. Every file is an asset named by where it lives (an
``https://`` URL, an ``s3://bucket/key`` URI, or a path under ``${RELAY_ASSET_BASE_URL}``) with its sha256 and size:
the worker fetches what a job uses, checks it, and caches it by content (``handlers.worker`` provisioning).

``${RELAY_ASSET_BASE_URL}/ava/ava.safetensors`` lets one checked-in manifest serve every place it runs: the local
stack points the variable at the assets it serves, a deployment at its own bucket or CDN; the sha256 is the same
everywhere, so a wrong base can never place a wrong file.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator

__all__ = [
    "ASSET_BASE_VAR",
    "AssetBaseMissing",
    "AssetKind",
    "CharacterLora",
    "CharacterProfile",
    "CharacterVoice",
    "PackAsset",
    "PackEntry",
    "asset_location",
    "character_schema",
]

#: The environment variable a manifest URL may start with (``${RELAY_ASSET_BASE_URL}/<path>``).
ASSET_BASE_VAR: Final = "RELAY_ASSET_BASE_URL"
_BASE_PREFIX: Final = "${" + ASSET_BASE_VAR + "}/"
_PARAM_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_S3 = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\x00-\x1f\s]+")
_HTTPS = re.compile(r"https://[^\s/?#@]+/[^\s]*")
#: ComfyUI's model file extensions (``folder_paths.supported_pt_extensions``).
_MODEL_EXTENSIONS = frozenset({".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin"})
_IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
_AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg"})
_MAX_ASSET_BYTES = 64 * 1024**3


class AssetBaseMissing(ValueError):
    """An asset URL uses ``${RELAY_ASSET_BASE_URL}`` and the variable is not set."""


def _asset_url(value: str) -> str:
    if value.startswith(_BASE_PREFIX):
        path = value[len(_BASE_PREFIX) :]
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") for p in parts) or any(c.isspace() for c in path):
            raise ValueError(f"the path after {_BASE_PREFIX} must be relative, without empty, '.' or '..' segments")
        return value
    if _HTTPS.fullmatch(value) or _S3.fullmatch(value):
        return value
    raise ValueError(f"must be an https:// URL, an s3://bucket/key URI, or start with {_BASE_PREFIX}")


AssetUrl = Annotated[str, AfterValidator(_asset_url)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def asset_location(url: str, base: str | None) -> str:
    """The URL or S3 URI an asset is fetched from: ``url`` itself, or its path under ``base`` (the value of
    ``RELAY_ASSET_BASE_URL``). :class:`AssetBaseMissing` when ``url`` needs a base and there is none."""
    if not url.startswith(_BASE_PREFIX):
        return url
    if not base:
        raise AssetBaseMissing(f"{url} needs {ASSET_BASE_VAR} (an https:// or s3:// base) to be set on the worker")
    return base.rstrip("/") + "/" + url[len(_BASE_PREFIX) :]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackAsset(_Model):
    """One file of a character: where it lives, and what it must be."""

    file: str = Field(
        pattern=f"^{_FILE.pattern}$",
        description="the file name ComfyUI's loaders and the pack's defaults use (no folders), e.g. ava_v1.safetensors",
    )
    url: AssetUrl = Field(
        description="https:// URL, s3://bucket/key, or ${RELAY_ASSET_BASE_URL}/<path> (the base set per deployment)"
    )
    sha256: Sha256 = Field(description="hex sha256 of the file: a download that differs is never used")
    size: int = Field(gt=0, le=_MAX_ASSET_BYTES, description="size in bytes (a download is cut off beyond it)")


class CharacterLora(PackAsset):
    """A LoRA of the character, placed in ComfyUI's ``models/loras``."""

    strength_model: float = Field(default=1.0, ge=-10, le=10)
    strength_clip: float = Field(default=1.0, ge=-10, le=10)
    trigger_words: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list, description="words this LoRA was trained on (added to the character's)"
    )


class CharacterVoice(_Model):
    """A voice sample (5-15 s of the character speaking) and exactly what is said in it, for F5-TTS."""

    sample: PackAsset
    transcript: str = Field(min_length=1)


class AssetKind(StrEnum):
    """What an asset is to ComfyUI: a model file (``models/<folder>``) or an input file (``input/``)."""

    LORA = "lora"
    REFERENCE_IMAGE = "reference_image"
    VOICE_SAMPLE = "voice_sample"

    @property
    def model_folder(self) -> str | None:
        """The ComfyUI models folder of this kind; ``None`` for input files."""
        return "loras" if self is AssetKind.LORA else None


@dataclass(frozen=True, slots=True)
class PackEntry:
    """An asset of a pack with what it is, and where in the manifest it is (for messages)."""

    kind: AssetKind
    asset: PackAsset
    path: str


_EXTENSIONS = {
    AssetKind.LORA: _MODEL_EXTENSIONS,
    AssetKind.REFERENCE_IMAGE: _IMAGE_EXTENSIONS,
    AssetKind.VOICE_SAMPLE: _AUDIO_EXTENSIONS,
}


class CharacterProfile(_Model):
    """``workflows/<character>/character.json``: a character's identity and assets, applied as parameter defaults."""

    name: str = Field(min_length=1)
    description: str = ""
    trigger_words: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list)
    loras: list[CharacterLora] = Field(default_factory=list, description="the first is the character's default LoRA")
    reference_images: list[PackAsset] = Field(default_factory=list, description="face references, best first")
    voice: CharacterVoice | None = None
    defaults: dict[Annotated[str, StringConstraints(pattern=_PARAM_NAME)], JsonValue] = Field(default_factory=dict)
    """Parameter defaults by name; they win over the conventional names derived from the fields above."""

    @model_validator(mode="after")
    def _assets_consistent(self) -> Self:
        problems = []
        seen: dict[str, str] = {}
        for entry in self.assets():
            name = entry.asset.file
            extension = posixpath.splitext(name)[1].lower()
            allowed = _EXTENSIONS[entry.kind]
            if extension not in allowed:
                endings = ", ".join(sorted(allowed))
                problems.append(f"{entry.path}.file {name!r}: a {entry.kind.value} must end in {endings}")
            if name in seen:
                problems.append(f"{entry.path}.file {name!r} is also {seen[name]}: file names must be unique in a pack")
            seen.setdefault(name, entry.path)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def lora(self) -> CharacterLora | None:
        """The default LoRA (the first), if the character has one."""
        return self.loras[0] if self.loras else None

    def reference_names(self) -> list[str]:
        return [image.file for image in self.reference_images]

    def assets(self) -> list[PackEntry]:
        """Every asset of the pack, in manifest order."""
        entries = [PackEntry(AssetKind.LORA, lora, f"loras[{i}]") for i, lora in enumerate(self.loras)]
        entries += [
            PackEntry(AssetKind.REFERENCE_IMAGE, image, f"reference_images[{i}]")
            for i, image in enumerate(self.reference_images)
        ]
        if self.voice is not None:
            entries.append(PackEntry(AssetKind.VOICE_SAMPLE, self.voice.sample, "voice.sample"))
        return entries

    def all_trigger_words(self) -> list[str]:
        """The character's trigger words, then its default LoRA's, without repeats."""
        words = [*self.trigger_words, *(self.lora.trigger_words if self.lora is not None else [])]
        return list(dict.fromkeys(words))

    def with_lora(self, lora: CharacterLora, *, default: bool = True) -> CharacterProfile:
        """This pack with ``lora`` added (a trained LoRA registered into the pack): as the default LoRA unless
        ``default`` is false; a LoRA of the same file name is replaced. The result is validated like a manifest."""
        others = [existing for existing in self.loras if existing.file != lora.file]
        loras = [lora, *others] if default else [*others, lora]
        return CharacterProfile.model_validate({**self.model_dump(), "loras": [x.model_dump() for x in loras]})

    def param_defaults(self) -> dict[str, JsonValue]:
        """Defaults by parameter name. The profile's fields map to conventional names (``trigger_words``,
        ``trigger_word`` (the first), ``lora``, ``lora_strength``, ``lora_strength_clip``, ``reference_image``,
        ``voice_sample``, ``voice_transcript``); a template uses whichever it declares, and ``defaults`` wins
        over them."""
        derived: dict[str, JsonValue] = {}
        words = self.all_trigger_words()
        if words:
            derived["trigger_words"] = ", ".join(words)
            derived["trigger_word"] = words[0]  # what a LoRA training learns
        if self.lora is not None:
            derived["lora"] = self.lora.file
            derived["lora_strength"] = self.lora.strength_model
            derived["lora_strength_clip"] = self.lora.strength_clip
        if self.reference_images:
            derived["reference_image"] = self.reference_images[0].file
        if self.voice is not None:
            derived["voice_sample"] = self.voice.sample.file
            derived["voice_transcript"] = self.voice.transcript
        return {**derived, **self.defaults}


def character_schema() -> dict[str, Any]:
    """The JSON Schema of ``character.json``, generated from :class:`CharacterProfile`."""
    schema = CharacterProfile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "character.json"
    return schema
