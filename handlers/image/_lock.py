"""The image lock: every pin an image build or a model fetch needs, as data (``worker_image/lock.json``).

The lock is generated (:mod:`handlers.image._generate_lock`) from the templates' manifests, the profiles and the
digests known for each model URL; this module only reads it, so the image tools need nothing but pydantic here.
A model without a known sha256 says so (``sha256: null`` and ``unverified``): the fetcher refuses it unless told
explicitly that an unverified download is acceptable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "COMFYUI_COMMIT",
    "COMFYUI_REPO",
    "CustomNodePin",
    "ImageLock",
    "LockError",
    "ModelPin",
    "ProfileLock",
    "load_lock",
]

COMFYUI_REPO: Final = "https://github.com/Comfy-Org/ComfyUI.git"
#: ComfyUI 0.3.64: the commit the recordings, the /object_info catalogue and the emulator are checked against.
COMFYUI_COMMIT: Final = "a125cd84b054a57729b5eecab930ca9408719832"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9._+-]+$")


class LockError(ValueError):
    """The lock file is missing, malformed, or does not have what was asked for (a profile, a model)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ComfyUIPin(_Frozen):
    repo: str = COMFYUI_REPO
    commit: str = Field(pattern=_COMMIT.pattern)


class CustomNodePin(_Frozen):
    """A custom node pack at an exact commit. ``requirements``: extra pip requirements beyond the pack's own
    ``requirements.txt`` (which the installer always honours when the checkout has one)."""

    name: str = Field(pattern=_SAFE_PART.pattern)
    repo: str
    commit: str = Field(pattern=_COMMIT.pattern)
    requirements: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()


class ModelPin(_Frozen):
    """One model file: where it goes (``folder``/``file`` under a ComfyUI models directory), where it comes from
    (``url``, or ``generator`` for the small random-weight models of the ``test`` profile), and how it is checked."""

    folder: str
    file: str = Field(pattern=_SAFE_PART.pattern)
    url: str | None = None
    #: Other URLs serving the same bytes (same sha256), tried in order when ``url`` fails.
    mirrors: tuple[str, ...] = ()
    generator: str | None = None
    sha256: str | None = None
    size: int | None = Field(default=None, ge=0)
    #: Environment variable holding a bearer token for this URL (e.g. HF_TOKEN for gated Hugging Face repos).
    token_env: str | None = None
    #: Why ``sha256`` is missing; a model with a reason is fetched only with ``--allow-unverified``.
    unverified: str | None = None
    #: Where the digest was checked (a published LFS pointer, a model card...).
    digest_source: str | None = None
    templates: tuple[str, ...] = ()

    @field_validator("folder")
    @classmethod
    def _relative_folder(cls, value: str) -> str:
        parts = value.split("/")
        if not value or any(not _SAFE_PART.match(p) or p in {".", ".."} for p in parts):
            raise ValueError(f"folder {value!r} must be a relative path of plain names")
        return value

    @model_validator(mode="after")
    def _source_and_digest(self) -> ModelPin:
        if (self.url is None) == (self.generator is None):
            raise ValueError(f"{self.id}: give exactly one of url or generator")
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"{self.id}: sha256 must be 64 lowercase hex digits")
        if self.sha256 is None and not self.unverified:
            raise ValueError(f"{self.id}: without a sha256, 'unverified' must say why")
        if self.mirrors and self.sha256 is None:
            raise ValueError(f"{self.id}: mirrors need a sha256 (it is what makes them the same file)")
        return self

    @property
    def id(self) -> str:
        """``<folder>/<file>``: the model's path under a models directory, unique in a lock."""
        return f"{self.folder}/{self.file}"


class ProfileLock(_Frozen):
    description: str = ""
    templates: tuple[str, ...] = ()
    custom_nodes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


class ImageLock(_Frozen):
    about: str = ""
    comfyui: ComfyUIPin
    custom_nodes: tuple[CustomNodePin, ...] = ()
    models: tuple[ModelPin, ...] = ()
    profiles: dict[str, ProfileLock] = Field(default_factory=dict)
    #: ComfyUI model folders that extra_model_paths.yaml maps (baked and network volume).
    model_folders: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references_resolve(self) -> ImageLock:
        ids = [m.id for m in self.models]
        if len(ids) != len(set(ids)):
            raise ValueError("a model is listed twice")
        names = {n.name for n in self.custom_nodes}
        for name, profile in self.profiles.items():
            missing = [m for m in profile.models if m not in ids] + [n for n in profile.custom_nodes if n not in names]
            if missing:
                raise ValueError(f"profile {name!r} names what the lock lacks: {', '.join(missing)}")
        return self

    def profile(self, name: str) -> ProfileLock:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise LockError(f"no profile {name!r} in the lock (profiles: {known})") from None

    def models_of(self, profile: str) -> list[ModelPin]:
        wanted = set(self.profile(profile).models)
        return [m for m in self.models if m.id in wanted]

    def nodes_of(self, profile: str) -> list[CustomNodePin]:
        wanted = set(self.profile(profile).custom_nodes)
        return [n for n in self.custom_nodes if n.name in wanted]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=False) + "\n"


def load_lock(path: Path) -> ImageLock:
    """Read and validate a lock file; :class:`LockError` with the path on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LockError(f"{path}: cannot read the lock ({exc.strerror or exc})") from None
    try:
        return ImageLock.model_validate_json(text)
    except ValueError as exc:
        raise LockError(f"{path}: not a valid lock: {exc}") from None
