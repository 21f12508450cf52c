"""ControlNet, Flux Redux (CLIP vision + style model) and DWPose nodes, run serverless with a RecordingContext."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PIL import Image

from handlers.local.comfyui._node import Folders, NodeOutput
from handlers.local.comfyui._nodes import NODE_CLASSES, RecordingContext
from handlers.local.comfyui._nodes._types import Clip, Conditioning, Images


@pytest.fixture
def ctx(folders: Folders) -> RecordingContext:
    return RecordingContext(folders)


async def run(ctx: RecordingContext, class_type: str, **inputs: Any) -> NodeOutput:
    return await NODE_CLASSES[class_type]().execute(ctx, **inputs)


def photo(colour: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> Images:
    return Images((Image.new("RGB", size, colour),))


POSITIVE = Conditioning(("a dancer",), Clip(("clip_l.safetensors",)))
NEGATIVE = Conditioning(("blurry",), Clip(("clip_l.safetensors",)))


async def test_controlnet_changes_both_conditionings_with_the_hint_unless_strength_is_0(ctx: RecordingContext) -> None:
    (net,) = (await run(ctx, "ControlNetLoader", control_net_name="openpose.safetensors")).values
    span = {"start_percent": 0.0, "end_percent": 1.0}
    apply = {"positive": POSITIVE, "negative": NEGATIVE, "control_net": net, **span}
    red = (await run(ctx, "ControlNetApplyAdvanced", image=photo((255, 0, 0)), strength=1.0, **apply)).values
    blue = (await run(ctx, "ControlNetApplyAdvanced", image=photo((0, 0, 255)), strength=1.0, **apply)).values
    assert red[0] != POSITIVE and red[1] != NEGATIVE and red != blue
    off = (await run(ctx, "ControlNetApplyAdvanced", image=photo((255, 0, 0)), strength=0.0, **apply)).values
    assert off == (POSITIVE, NEGATIVE)


async def test_redux_appends_one_token_set_per_application_and_follows_the_references(ctx: RecordingContext) -> None:
    (vision,) = (await run(ctx, "CLIPVisionLoader", clip_name="sigclip.safetensors")).values
    (redux,) = (await run(ctx, "StyleModelLoader", style_model_name="redux.safetensors")).values
    batch = Images(photo((10, 20, 30)).frames + photo((40, 50, 60)).frames)
    (encoded,) = (await run(ctx, "CLIPVisionEncode", clip_vision=vision, image=batch, crop="center")).values
    (other,) = (await run(ctx, "CLIPVisionEncode", clip_vision=vision, image=photo((9, 9, 9)), crop="center")).values
    style = {"style_model": redux, "strength": 0.6, "strength_type": "attn_bias"}
    (once,) = (await run(ctx, "StyleModelApply", conditioning=POSITIVE, clip_vision_output=encoded, **style)).values
    (twice,) = (await run(ctx, "StyleModelApply", conditioning=once, clip_vision_output=other, **style)).values
    (changed,) = (await run(ctx, "StyleModelApply", conditioning=POSITIVE, clip_vision_output=other, **style)).values
    assert len(dict(once.extras)["style_tokens"]) == 1 and len(dict(twice.extras)["style_tokens"]) == 2
    assert once != changed and once.texts == POSITIVE.texts


def annotators(folders: Folders, *names: str) -> None:
    for name in names:
        path = folders.models / "annotators" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


DWPOSE = {"bbox_detector": "yolox_l.torchscript.pt", "pose_estimator": "dw-ll_ucoco_384_bs5.torchscript.pt"}


async def test_dwpose_draws_a_skeleton_map_at_the_resolution_and_reports_keypoints(
    ctx: RecordingContext, folders: Folders
) -> None:
    annotators(folders, "hr16/yolox-onnx/yolox_l.torchscript.pt")
    annotators(folders, "hr16/DWPose-TorchScript-BatchSize5/dw-ll_ucoco_384_bs5.torchscript.pt")
    out = await run(ctx, "DWPreprocessor", image=photo((200, 180, 160)), resolution=512, **DWPOSE)
    pose_map, keypoints = out.values
    assert isinstance(pose_map, Images)
    assert (pose_map.width, pose_map.height) == (768, 512)  # the short side scaled to the resolution
    colours = pose_map.frames[0].getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 2  # black, and coloured limbs
    assert out.ui is not None and json.loads(out.ui["openpose_json"][0]) == keypoints
    (person,) = keypoints[0]["people"]
    assert len(person["pose_keypoints_2d"]) == 18 * 3
    assert all(0 <= v <= 1 for v in person["pose_keypoints_2d"])
    assert (keypoints[0]["canvas_width"], keypoints[0]["canvas_height"]) == (300, 200)
    assert [(c.value, c.total) for c in ctx.progress_calls] == [(1, 1)]
    # Without the body drawn, the map is black (the keypoints are still reported, as at the pinned commit).
    hidden = await run(ctx, "DWPreprocessor", image=photo((200, 180, 160)), detect_body="disable", **DWPOSE)
    assert hidden.values[0].frames[0].getextrema() == ((0, 0), (0, 0), (0, 0))
    assert hidden.values[1][0]["people"]


async def test_dwpose_without_its_checkpoints_fails_as_offline(ctx: RecordingContext, folders: Folders) -> None:
    annotators(folders, "hr16/DWPose-TorchScript-BatchSize5/dw-ll_ucoco_384_bs5.torchscript.pt")
    with pytest.raises(OSError, match=r"hr16/yolox-onnx/yolox_l\.torchscript\.pt"):
        await run(ctx, "DWPreprocessor", image=photo((1, 2, 3)), **DWPOSE)
