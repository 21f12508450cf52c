"""Audio and video nodes: EmptyAudio, SaveAudio (FLAC), CreateVideo, SaveVideo (H.264 MP4)."""

from __future__ import annotations

import array
import asyncio
import json
from typing import Any

from .._node import Folders, Node, NodeContext, NodeOutput
from ._files import file_entry, save_path, temp_prefix
from ._flac import encode_flac
from ._h264 import encode_h264
from ._mp4 import mux_mp4
from ._types import Audio, Images, Video

__all__ = ["CreateVideo", "EmptyAudio", "PreviewAudio", "SaveAudio", "SaveVideo"]

_PREFIX_TOOLTIP = (
    "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or "
    "%Empty Latent Image.width% to include values from nodes."
)


def _metadata(pnginfo: dict[str, Any]) -> dict[str, str]:
    return {key: json.dumps(value) for key, value in pnginfo.items()}


class EmptyAudio(Node):
    CLASS_TYPE = "EmptyAudio"
    DISPLAY_NAME = "Empty Audio"
    CATEGORY = "audio"
    PYTHON_MODULE = "comfy_extras.nodes_audio"
    RETURN_TYPES = ("AUDIO",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "duration": [
                    "FLOAT",
                    {
                        "default": 60.0,
                        "min": 0.0,
                        "max": 18446744073709551615,
                        "step": 0.01,
                        "tooltip": "Duration of the empty audio clip in seconds",
                    },
                ],
                "sample_rate": ["INT", {"default": 44100, "tooltip": "Sample rate of the empty audio clip."}],
                "channels": [
                    "INT",
                    {
                        "default": 2,
                        "min": 1,
                        "max": 2,
                        "tooltip": "Number of audio channels (1 for mono, 2 for stereo).",
                    },
                ],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, duration: float, sample_rate: int, channels: int, **_: Any
    ) -> NodeOutput:
        frames = round(duration * sample_rate)
        silence = bytes(2 * frames)
        return NodeOutput((Audio(tuple(array.array("h", silence) for _ in range(channels)), sample_rate),))


class SaveAudio(Node):
    CLASS_TYPE = "SaveAudio"
    DISPLAY_NAME = "Save Audio (FLAC)"
    CATEGORY = "audio"
    PYTHON_MODULE = "comfy_extras.nodes_audio"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {"audio": ["AUDIO"], "filename_prefix": ["STRING", {"default": "audio/ComfyUI"}]},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    async def execute(self, ctx: NodeContext, *, audio: Audio, filename_prefix: str, **_: Any) -> NodeOutput:
        return NodeOutput(ui=await _save_flac(ctx, audio, filename_prefix, "output"))


async def _save_flac(ctx: NodeContext, audio: Audio, prefix: str, kind: str) -> dict[str, Any]:
    where = save_path(prefix, ctx.folders.output if kind == "output" else ctx.folders.temp)
    name = where.name(0, "flac")
    data = await asyncio.to_thread(encode_flac, audio.channels, audio.sample_rate, _metadata(ctx.pnginfo))
    await asyncio.to_thread((where.folder / name).write_bytes, data)
    return {"audio": [file_entry(name, where.subfolder, kind)]}


class PreviewAudio(Node):
    CLASS_TYPE = "PreviewAudio"
    DISPLAY_NAME = "Preview Audio"
    CATEGORY = "audio"
    PYTHON_MODULE = "comfy_extras.nodes_audio"
    OUTPUT_NODE = True

    def __init__(self) -> None:
        self.prefix = temp_prefix()

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"audio": ["AUDIO"]}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    async def execute(self, ctx: NodeContext, *, audio: Audio, **_: Any) -> NodeOutput:
        return NodeOutput(ui=await _save_flac(ctx, audio, self.prefix, "temp"))


class CreateVideo(Node):
    CLASS_TYPE = "CreateVideo"
    DISPLAY_NAME = "Create Video"
    DESCRIPTION = "Create a video from images."
    CATEGORY = "image/video"
    PYTHON_MODULE = "comfy_extras.nodes_video"
    RETURN_TYPES = ("VIDEO",)
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "images": ["IMAGE", {"tooltip": "The images to create a video from."}],
                "fps": ["FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0}],
            },
            "optional": {"audio": ["AUDIO", {"tooltip": "The audio to add to the video."}]},
        }

    async def execute(
        self, ctx: NodeContext, *, images: Images, fps: float, audio: Audio | None = None, **_: Any
    ) -> NodeOutput:
        return NodeOutput((Video(images, fps, audio),))


class SaveVideo(Node):
    """Writes H.264 in MP4 (the only choices the real node offers); an audio track is not written."""

    CLASS_TYPE = "SaveVideo"
    DISPLAY_NAME = "Save Video"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."
    CATEGORY = "image/video"
    PYTHON_MODULE = "comfy_extras.nodes_video"
    OUTPUT_NODE = True
    OUTPUT_TOOLTIPS = ()
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "video": ["VIDEO", {"tooltip": "The video to save."}],
                "filename_prefix": [
                    "STRING",
                    {"tooltip": _PREFIX_TOOLTIP, "default": "video/ComfyUI", "multiline": False},
                ],
                "format": [
                    "COMBO",
                    {
                        "tooltip": "The format to save the video as.",
                        "default": "auto",
                        "multiselect": False,
                        "options": ["auto", "mp4"],
                    },
                ],
                "codec": [
                    "COMBO",
                    {
                        "tooltip": "The codec to use for the video.",
                        "default": "auto",
                        "multiselect": False,
                        "options": ["auto", "h264"],
                    },
                ],
            },
            "hidden": {"prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"]},
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        video: Video,
        filename_prefix: str,
        format: str = "auto",
        codec: str = "auto",
        **_: Any,
    ) -> NodeOutput:
        where = save_path(filename_prefix, ctx.folders.output, video.images.width, video.images.height)
        name = where.name(0, "mp4")
        data = await asyncio.to_thread(lambda: mux_mp4(encode_h264(video.images.frames), video.fps))
        await asyncio.to_thread((where.folder / name).write_bytes, data)
        return NodeOutput(ui={"images": [file_entry(name, where.subfolder, "output")], "animated": [True]})
