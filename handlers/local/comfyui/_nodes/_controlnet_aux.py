"""Custom node pack Fannovel16/comfyui_controlnet_aux (commit 12f35647, ``node_wrappers/dwpose.py``), simulated:
the DWPose estimator, which turns a photo into an OpenPose skeleton map for a pose ControlNet.

Like the real node, it needs its two checkpoints (a person detector and the pose estimator) in the pack's annotator
folder, which the worker image points at ``models/annotators`` (``AUX_ANNOTATOR_CKPTS_PATH``); offline, the real pack
would try to download them and fail. The map is black with one stick figure in OpenPose's colours, placed from the
photo's digest; its short side is ``resolution`` (the aspect ratio kept). The keypoints (fractions of the photo,
whose size is the JSON's canvas) come back as ``POSE_KEYPOINT`` and in the ui as ``openpose_json``.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from PIL import Image, ImageDraw

from .._node import Folders, Node, NodeContext, NodeOutput
from ._types import Images, digest

__all__ = ["DWPreprocessor"]

_MODULE = "custom_nodes.comfyui_controlnet_aux"
_ANNOTATORS = "annotators"
#: Where each checkpoint choice is downloaded from (a Hugging Face repository: its folder under the annotators).
_BBOX_REPOS = {
    "yolox_l.onnx": "yzd-v/DWPose",
    "yolox_l.torchscript.pt": "hr16/yolox-onnx",
    "yolo_nas_l_fp16.onnx": "hr16/yolo-nas-fp16",
    "yolo_nas_m_fp16.onnx": "hr16/yolo-nas-fp16",
    "yolo_nas_s_fp16.onnx": "hr16/yolo-nas-fp16",
}
_POSE_REPOS = {
    "dw-ll_ucoco_384_bs5.torchscript.pt": "hr16/DWPose-TorchScript-BatchSize5",
    "dw-ll_ucoco_384.onnx": "yzd-v/DWPose",
    "dw-ll_ucoco.onnx": "hr16/UnJIT-DWPose",
}
_SWITCH = ["enable", "disable"]
#: OpenPose's 18 body keypoints of a person standing, as fractions of the figure's box (nose, neck, right arm,
#: left arm, right leg, left leg, eyes, ears).
_BODY = (
    (0.50, 0.08), (0.50, 0.18), (0.38, 0.19), (0.33, 0.33), (0.30, 0.46), (0.62, 0.19), (0.67, 0.33), (0.70, 0.46),
    (0.44, 0.50), (0.43, 0.70), (0.42, 0.92), (0.56, 0.50), (0.57, 0.70), (0.58, 0.92), (0.48, 0.06), (0.52, 0.06),
    (0.46, 0.07), (0.54, 0.07),
)  # fmt: skip
_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 0),
    (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip


def _limb_colour(index: int) -> tuple[int, int, int]:
    # OpenPose draws each limb in its own hue around the colour wheel.
    hue = index * 360 // len(_LIMBS)
    image = Image.new("HSV", (1, 1), (hue * 255 // 360, 255, 255)).convert("RGB")
    pixel = image.getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return pixel[0], pixel[1], pixel[2]


def _pose(
    content: int, size: tuple[int, int], canvas: tuple[int, int], body: bool
) -> tuple[Image.Image, dict[str, Any]]:
    """The map (``canvas`` pixels) and the OpenPose JSON of the one person "found" in an image of ``size``."""
    rng = random.Random(digest("dwpose", content))  # noqa: S311 - a picture, not a secret
    box_h = rng.uniform(0.7, 0.9)
    box_w = min(1.0, box_h * 0.6 * size[1] / size[0])
    left, top = rng.uniform(0, 1 - box_w), rng.uniform(0, 1 - box_h)
    points = [(left + x * box_w, top + y * box_h) for x, y in _BODY]  # fractions of the image, as DWPose keeps them
    width, height = canvas
    image = Image.new("RGB", canvas)
    if body:
        draw = ImageDraw.Draw(image)
        stroke = max(2, width // 128)
        pixels = [(x * width, y * height) for x, y in points]
        for index, (a, b) in enumerate(_LIMBS):
            draw.line((pixels[a], pixels[b]), fill=_limb_colour(index), width=stroke)
        for index, (x, y) in enumerate(pixels):
            draw.ellipse((x - stroke, y - stroke, x + stroke, y + stroke), fill=_limb_colour(index % len(_LIMBS)))
    # The keypoints are reported whatever is drawn (at the pinned commit); hands and face are not simulated.
    person = {
        "pose_keypoints_2d": [v for x, y in points for v in (x, y, 1.0)],
        "face_keypoints_2d": None,
        "hand_left_keypoints_2d": None,
        "hand_right_keypoints_2d": None,
    }
    return image, {"people": [person], "canvas_height": size[1], "canvas_width": size[0]}


class DWPreprocessor(Node):
    CLASS_TYPE = "DWPreprocessor"
    DISPLAY_NAME = "DWPose Estimator"
    CATEGORY = "ControlNet Preprocessors/Faces and Poses Estimators"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("IMAGE", "POSE_KEYPOINT")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {"image": ["IMAGE"]},
            "optional": {
                "detect_hand": [list(_SWITCH), {"default": "enable"}],
                "detect_body": [list(_SWITCH), {"default": "enable"}],
                "detect_face": [list(_SWITCH), {"default": "enable"}],
                "resolution": ["INT", {"default": 512, "min": 64, "max": 16384, "step": 64}],
                "bbox_detector": [["None", *_BBOX_REPOS], {"default": "yolox_l.onnx"}],
                "pose_estimator": [list(_POSE_REPOS), {"default": "dw-ll_ucoco_384_bs5.torchscript.pt"}],
                "scale_stick_for_xinsr_cn": [["disable", "enable"], {"default": "disable"}],
            },
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        image: Images,
        detect_body: str = "enable",
        resolution: int = 512,
        bbox_detector: str = "yolox_l.onnx",
        pose_estimator: str = "dw-ll_ucoco_384_bs5.torchscript.pt",
        **_: Any,
    ) -> NodeOutput:
        needed = [(_POSE_REPOS[pose_estimator], pose_estimator)]
        if bbox_detector != "None":
            needed.append((_BBOX_REPOS[bbox_detector], bbox_detector))
        for repo, name in needed:
            if name not in ctx.folders.model_files(f"{_ANNOTATORS}/{repo}"):
                # What huggingface_hub says when the pack tries to fetch a missing checkpoint with no network.
                raise OSError(f"We couldn't connect to 'https://huggingface.co' to load the files {repo}/{name}")
        # The detection runs on the image scaled so that its short side is `resolution`; the map keeps that size.
        if resolution < 64:
            resolution = 512
        ratio = resolution / min(image.width, image.height)
        width, height = round(image.width * ratio), round(image.height * ratio)
        frames, people = [], []
        for index, frame in enumerate(image.frames):
            content = digest(Images((frame,)).content_digest())
            canvas, found = await asyncio.to_thread(
                _pose, content, frame.size, (width, height), detect_body == "enable"
            )
            frames.append(canvas)
            people.append(found)
            await ctx.progress(index + 1, len(image))
        return NodeOutput((Images(tuple(frames)), people), ui={"openpose_json": [json.dumps(people, indent=4)]})
