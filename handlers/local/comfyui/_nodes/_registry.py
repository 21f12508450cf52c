"""The node classes the emulator implements, and their ``/object_info`` catalogue."""

from __future__ import annotations

from typing import Any

from .._node import Folders, Node
from ._conditioning import ConditioningZeroOut, FluxGuidance, InpaintModelConditioning, WanImageToVideo
from ._controlnet import ControlNetApplyAdvanced, ControlNetLoader
from ._controlnet_aux import DWPreprocessor
from ._custom_sampler import BasicGuider, BasicScheduler, KSamplerSelect, RandomNoise, SamplerCustomAdvanced
from ._f5tts import F5TTSAudioInputs
from ._image import (
    EmptyImage,
    GetImageSize,
    ImageBatch,
    ImageBlur,
    ImageCompositeMasked,
    ImageCrop,
    ImageInvert,
    ImagePadForOutpaint,
    ImageScale,
    ImageScaleBy,
    ImageStitch,
)
from ._ipadapter import (
    IPAdapterAdvanced,
    IPAdapterFaceID,
    IPAdapterInsightFaceLoader,
    IPAdapterModelLoader,
    IPAdapterUnifiedLoader,
    IPAdapterUnifiedLoaderFaceID,
)
from ._load import LoadAudio, LoadImage, LoadImageMask
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
from ._mask import GrowMask
from ._media import CreateVideo, EmptyAudio, PreviewAudio, SaveAudio, SaveVideo
from ._model_patches import DifferentialDiffusion, ModelSamplingAuraFlow, ModelSamplingSD3
from ._primitives import (
    PreviewAny,
    PrimitiveBoolean,
    PrimitiveFloat,
    PrimitiveInt,
    PrimitiveString,
    StringConcatenate,
)
from ._pulid import ApplyPulid, ApplyPulidAdvanced, PulidEvaClipLoader, PulidInsightFaceLoader, PulidModelLoader
from ._sampling import (
    EmptyLatentImage,
    EmptySD3LatentImage,
    KSampler,
    KSamplerAdvanced,
    SaveLatent,
    SetLatentNoiseMask,
    VAEDecode,
    VAEEncode,
    VAEEncodeForInpaint,
)
from ._save import PreviewImage, SaveAnimatedPNG, SaveAnimatedWEBP, SaveImage, SaveImageWebsocket
from ._style_model import CLIPVisionEncode, CLIPVisionLoader, StyleModelApply, StyleModelLoader
from ._train import LoadImageTextSetFromFolderNode, LoraModelLoader, LossGraphNode, SaveLoRANode, TrainLoraNode
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
    ImageBatch,
    ImageStitch,
    # masks
    GrowMask,
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
    # custom sampling, conditioning and model patches (Flux, Qwen-Image, Z-Image, WAN, inpainting)
    RandomNoise,
    KSamplerSelect,
    BasicScheduler,
    BasicGuider,
    SamplerCustomAdvanced,
    FluxGuidance,
    ConditioningZeroOut,
    ModelSamplingAuraFlow,
    ModelSamplingSD3,
    DifferentialDiffusion,
    InpaintModelConditioning,
    VAEEncodeForInpaint,
    WanImageToVideo,
    # ControlNet and image prompts (Flux Redux)
    ControlNetLoader,
    ControlNetApplyAdvanced,
    CLIPVisionLoader,
    CLIPVisionEncode,
    StyleModelLoader,
    StyleModelApply,
    # training
    LoadImageTextSetFromFolderNode,
    TrainLoraNode,
    LoraModelLoader,
    SaveLoRANode,
    LossGraphNode,
    # audio and video
    LoadAudio,
    EmptyAudio,
    SaveAudio,
    PreviewAudio,
    CreateVideo,
    SaveVideo,
    # custom node packs (workflows/_catalogue/custom_nodes.json): ComfyUI_IPAdapter_plus, PuLID_ComfyUI, ComfyUI-F5-TTS
    IPAdapterUnifiedLoader,
    IPAdapterUnifiedLoaderFaceID,
    IPAdapterModelLoader,
    IPAdapterInsightFaceLoader,
    IPAdapterAdvanced,
    IPAdapterFaceID,
    PulidModelLoader,
    PulidInsightFaceLoader,
    PulidEvaClipLoader,
    ApplyPulid,
    ApplyPulidAdvanced,
    F5TTSAudioInputs,
    # comfyui_controlnet_aux
    DWPreprocessor,
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
