"""The node classes the emulator implements, and their ``/object_info`` catalogue."""

from __future__ import annotations

from typing import Any

from .._node import Folders, Node
from ._image import (
    EmptyImage,
    GetImageSize,
    ImageBlur,
    ImageCompositeMasked,
    ImageCrop,
    ImageInvert,
    ImagePadForOutpaint,
    ImageScale,
    ImageScaleBy,
)
from ._load import LoadImage, LoadImageMask
from ._loaders import (
    CheckpointLoaderSimple,
    CLIPLoader,
    CLIPTextEncode,
    DualCLIPLoader,
    LoraLoader,
    LoraLoaderModelOnly,
    UNETLoader,
    VAELoader,
)
from ._media import CreateVideo, EmptyAudio, PreviewAudio, SaveAudio, SaveVideo
from ._primitives import (
    PreviewAny,
    PrimitiveBoolean,
    PrimitiveFloat,
    PrimitiveInt,
    PrimitiveString,
    StringConcatenate,
)
from ._sampling import (
    EmptyLatentImage,
    EmptySD3LatentImage,
    KSampler,
    KSamplerAdvanced,
    SaveLatent,
    SetLatentNoiseMask,
    VAEDecode,
    VAEEncode,
)
from ._save import PreviewImage, SaveAnimatedPNG, SaveAnimatedWEBP, SaveImage, SaveImageWebsocket
from ._upscale import ImageUpscaleWithModel, UpscaleModelLoader

__all__ = ["NODE_CLASSES", "node_info", "object_info"]

_CLASSES: tuple[type[Node], ...] = (
    # images
    EmptyImage,
    LoadImage,
    LoadImageMask,
    ImageScale,
    ImageScaleBy,
    ImageInvert,
    ImageBlur,
    ImageCrop,
    ImagePadForOutpaint,
    ImageCompositeMasked,
    GetImageSize,
    # outputs
    SaveImage,
    PreviewImage,
    SaveAnimatedWEBP,
    SaveAnimatedPNG,
    SaveImageWebsocket,
    PreviewAny,
    # primitives
    PrimitiveInt,
    PrimitiveFloat,
    PrimitiveString,
    PrimitiveBoolean,
    StringConcatenate,
    # models
    CheckpointLoaderSimple,
    UNETLoader,
    CLIPLoader,
    DualCLIPLoader,
    VAELoader,
    LoraLoader,
    LoraLoaderModelOnly,
    CLIPTextEncode,
    EmptyLatentImage,
    EmptySD3LatentImage,
    KSampler,
    KSamplerAdvanced,
    VAEDecode,
    VAEEncode,
    SetLatentNoiseMask,
    SaveLatent,
    UpscaleModelLoader,
    ImageUpscaleWithModel,
    # audio and video
    EmptyAudio,
    SaveAudio,
    PreviewAudio,
    CreateVideo,
    SaveVideo,
)

#: ``class_type`` -> node class, in catalogue order.
NODE_CLASSES: dict[str, type[Node]] = {cls.CLASS_TYPE: cls for cls in _CLASSES}


def object_info(folders: Folders) -> dict[str, dict[str, Any]]:
    """The body of ``GET /object_info``: every implemented node's entry, model combos listed from ``folders``."""
    return {name: cls.catalogue_entry(folders) for name, cls in NODE_CLASSES.items()}


def node_info(class_type: str, folders: Folders) -> dict[str, dict[str, Any]]:
    """The body of ``GET /object_info/{class_type}``: ``{class_type: entry}``, or ``{}`` for an unknown class."""
    cls = NODE_CLASSES.get(class_type)
    return {} if cls is None else {class_type: cls.catalogue_entry(folders)}
