"""Sizes from an aspect ratio and a pixel budget, rounded per model family."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.workflow import ModelFamily, detect_family, parse_aspect_ratio, size_for, size_multiple


@pytest.mark.parametrize(
    ("ratio", "megapixels", "family", "expected"),
    [
        ("1:1", 1.0, ModelFamily.SDXL, (1024, 1024)),
        ("16:9", 1.0, ModelFamily.SDXL, (1344, 768)),  # SDXL's own 16:9 bucket
        ("9:16", 1.0, ModelFamily.SDXL, (768, 1344)),
        ("16:9", 2.0, ModelFamily.SDXL, (1920, 1088)),
        ("16:9", 2.0, ModelFamily.FLUX, (1936, 1088)),
        ("1:1", 1.69, ModelFamily.QWEN_IMAGE, (1328, 1328)),  # Qwen-Image's native size
        ("4:5", 1.0, ModelFamily.Z_IMAGE, (912, 1136)),
        ("16:9", 0.45, ModelFamily.WAN, (912, 512)),
    ],
)
def test_known_sizes(ratio: str, megapixels: float, family: ModelFamily, expected: tuple[int, int]) -> None:
    assert size_for(ratio, megapixels, family=family) == expected


def test_multiple_eight_gives_1920x1080_class_sizes() -> None:
    width, height = size_for("16:9", 2.0, multiple=8)
    assert width % 8 == 0 and height % 8 == 0
    assert 1900 <= width <= 1950 and 1070 <= height <= 1100


@pytest.mark.parametrize(
    ("text", "ratio"),
    [("16:9", 16 / 9), ("16x9", 16 / 9), ("4/5", 0.8), ("1.5", 1.5), (2, 2.0), ((21, 9), 21 / 9), (" 3 : 2 ", 1.5)],
)
def test_aspect_ratio_forms(text: str | float | tuple[float, float], ratio: float) -> None:
    assert parse_aspect_ratio(text) == pytest.approx(ratio)


@pytest.mark.parametrize("bad", ["wide", "16:0", "0", "1:100", -1.0, "nan", (1, 0)])
def test_bad_aspect_ratios(bad: str | float | tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        parse_aspect_ratio(bad)


@pytest.mark.parametrize("megapixels", [0, -1, 1000, math.inf])
def test_bad_megapixels(megapixels: float) -> None:
    with pytest.raises(ValueError, match="megapixels"):
        size_for("1:1", megapixels)


def test_family_multiples() -> None:
    assert size_multiple("sdxl") == 64
    assert {size_multiple(f) for f in (ModelFamily.FLUX, ModelFamily.QWEN_IMAGE, ModelFamily.Z_IMAGE)} == {16}
    assert size_multiple(ModelFamily.WAN) == 16


@given(
    ratio=st.floats(min_value=0.25, max_value=4.0),
    megapixels=st.floats(min_value=0.25, max_value=4.0),
    multiple=st.sampled_from([8, 16, 64]),
)
def test_sizes_are_multiples_close_to_the_request(ratio: float, megapixels: float, multiple: int) -> None:
    width, height = size_for(ratio, megapixels, multiple=multiple)
    assert width % multiple == 0 and height % multiple == 0
    # Rounding both sides to the multiple moves the ratio and the area by at most about one step.
    step_error = multiple / min(width, height)
    assert abs(math.log(width / height / ratio)) <= 1.5 * step_error + 0.01
    assert abs(math.log(width * height / (megapixels * 1024 * 1024))) <= 2.5 * step_error + 0.01


def test_detect_family_from_loaders() -> None:
    def clip(kind: str) -> dict[str, object]:
        return {"1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "x", "type": kind}}}

    assert detect_family(clip("qwen_image")) is ModelFamily.QWEN_IMAGE
    assert detect_family(clip("lumina2")) is ModelFamily.Z_IMAGE
    assert detect_family(clip("wan")) is ModelFamily.WAN
    dual = {"1": {"class_type": "DualCLIPLoader", "inputs": {"type": "flux"}}}
    assert detect_family(dual) is ModelFamily.FLUX
    assert detect_family({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {}}}) is ModelFamily.SDXL
    assert detect_family({"1": {"class_type": "EmptyImage", "inputs": {}}}) is None
