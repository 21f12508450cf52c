"""The values that flow along the emulator's links, one class per ComfyUI socket type.

Real ComfyUI passes torch tensors and model patchers; the emulator passes small, immutable Python objects whose
``repr`` is short and readable, because the executor stringifies non-JSON values into
``execution_error.current_inputs``.

========================  ==============================================================================
socket type               emulator value
========================  ==============================================================================
IMAGE                     :class:`Images`: a batch of RGB Pillow images, all the same size
MASK                      :class:`Masks`: a batch of ``"L"`` Pillow images (255 = 1.0 in ComfyUI)
LATENT                    :class:`Latent`: pixel size, batch, a deterministic ``content`` seed, what it was
                          encoded from (img2img) and an optional noise mask
MODEL / CLIP / VAE        :class:`Model` / :class:`Clip` / :class:`Vae`: the model files, applied LoRAs and patches
CONDITIONING              :class:`Conditioning`: the encoded texts, the CLIP that encoded them, and extras
                          (guidance, an inpaint or start image) as ``(key, value)`` pairs
VIDEO                     :class:`Video`: frames (:class:`Images`) + fps (+ :class:`Audio`)
AUDIO                     :class:`Audio`: 16-bit PCM samples per channel + sample rate
INT/FLOAT/STRING/BOOLEAN  plain Python values
========================  ==============================================================================
"""

from __future__ import annotations

import array
import hashlib
from dataclasses import dataclass, field, replace
from typing import ClassVar

from PIL import Image

__all__ = [
    "Audio",
    "Clip",
    "Conditioning",
    "Images",
    "Latent",
    "Lora",
    "Masks",
    "Model",
    "Vae",
    "Video",
    "digest",
]


def digest(*parts: object) -> int:
    """A stable 64-bit seed from any printable parts (``hash()`` is salted per process, so it will not do)."""
    text = "\x1f".join(repr(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True, repr=False)
class _Frames:
    """A batch of Pillow images of one size and one mode, shown as ComfyUI's tensor shape (``IMAGE[1x64x64x3]``)."""

    frames: tuple[Image.Image, ...]

    _SOCKET: ClassVar[str]
    _MODE: ClassVar[str]
    _CHANNELS: ClassVar[str]

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError(f"{self._SOCKET}: a batch needs at least one frame")
        size = self.frames[0].size
        if any(f.size != size or f.mode != self._MODE for f in self.frames):
            raise ValueError(f"{self._SOCKET}: every frame of a batch must be mode {self._MODE} and of the same size")

    @property
    def width(self) -> int:
        return self.frames[0].width

    @property
    def height(self) -> int:
        return self.frames[0].height

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return f"{self._SOCKET}[{len(self.frames)}x{self.height}x{self.width}{self._CHANNELS}]"


@dataclass(frozen=True, repr=False)
class Images(_Frames):
    """IMAGE: ``frames`` are RGB images of one size (ComfyUI's ``[B, H, W, C]`` float tensor)."""

    _SOCKET = "IMAGE"
    _MODE = "RGB"
    _CHANNELS = "x3"

    def content_digest(self) -> int:
        return digest(*(hashlib.sha256(f.tobytes()).hexdigest() for f in self.frames), self.width, self.height)


@dataclass(frozen=True, repr=False)
class Masks(_Frames):
    """MASK: ``frames`` are ``"L"`` images of one size (ComfyUI's ``[B, H, W]`` float tensor, 1.0 = 255)."""

    _SOCKET = "MASK"
    _MODE = "L"
    _CHANNELS = ""


@dataclass(frozen=True)
class Lora:
    name: str
    strength: float


@dataclass(frozen=True)
class Model:
    """MODEL: the diffusion model file (checkpoint or ``diffusion_models`` file), the LoRAs patched onto it, and
    other patches (``("ModelSamplingSD3", 5.0)``, an identity adapter and its reference images' digest, ...)."""

    file: str
    loras: tuple[Lora, ...] = ()
    weight_dtype: str = "default"
    patches: tuple[tuple[object, ...], ...] = ()

    def patched(self, *patch: object) -> Model:
        return replace(self, patches=(*self.patches, patch))


@dataclass(frozen=True)
class Clip:
    """CLIP: the text-encoder files and the LoRAs patched onto them."""

    files: tuple[str, ...]
    type: str = "stable_diffusion"
    loras: tuple[Lora, ...] = ()


@dataclass(frozen=True)
class Vae:
    file: str


@dataclass(frozen=True)
class Conditioning:
    """CONDITIONING: what was encoded, and by which CLIP (so LoRAs on CLIP change the picture too)."""

    texts: tuple[str, ...]
    clip: Clip
    extras: tuple[tuple[str, object], ...] = ()

    def with_extra(self, key: str, value: object) -> Conditioning:
        return replace(self, extras=(*((k, v) for k, v in self.extras if k != key), (key, value)))


@dataclass(frozen=True)
class Latent:
    """LATENT, in pixel units (a real latent is 1/8 of the size; the emulator has no use for that).

    ``content`` is a seed derived from everything that produced the latent; VAEDecode draws a picture from it.
    ``strength`` is how much of that picture covers ``source`` (the pixels VAEEncode saw, None for an empty latent).
    ``frames`` is a video latent's length in decoded frames (WAN: ``length``), 1 for a still image; ``start`` the
    image an image-to-video latent starts from.
    """

    width: int
    height: int
    batch_size: int
    content: int
    strength: float = 0.0
    source: Images | None = None
    noise_mask: Masks | None = field(default=None)
    frames: int = 1
    start: Images | None = None


@dataclass(frozen=True, repr=False)
class Audio:
    """AUDIO: one ``array('h')`` of signed 16-bit samples per channel, all of the same length."""

    channels: tuple[array.array[int], ...]
    sample_rate: int

    @property
    def frames(self) -> int:
        return len(self.channels[0]) if self.channels else 0

    def __repr__(self) -> str:
        return f"AUDIO[{len(self.channels)}ch x {self.frames} @ {self.sample_rate} Hz]"


@dataclass(frozen=True, repr=False)
class Video:
    """VIDEO: frames, a frame rate, and optional audio (ComfyUI's ``VideoFromComponents``)."""

    images: Images
    fps: float
    audio: Audio | None = None

    def __repr__(self) -> str:
        return f"VIDEO[{len(self.images)} frames {self.images.width}x{self.images.height} @ {self.fps} fps]"
