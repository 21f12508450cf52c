"""``output.strip_metadata``: the workflow ComfyUI writes into images goes, the pixels stay byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from handlers.local.comfyui._nodes._save import apng_info, png_info, webp_exif
from handlers.worker._strip_metadata import strip_metadata

PNGINFO = {"prompt": {"3": {"class_type": "KSampler"}}, "workflow": {"nodes": [], "links": []}}


def _pixels(path: Path, frame: int = 0) -> bytes:
    with Image.open(path) as image:
        image.seek(frame)
        return image.convert("RGBA").tobytes()


def test_png_text_chunks_as_comfyui_writes_them_are_dropped(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGBA", (48, 32), (10, 200, 30, 128)).save(src, pnginfo=png_info(PNGINFO), compress_level=4)
    with Image.open(src) as image:
        assert json.loads(image.text["workflow"]) == PNGINFO["workflow"]  # what SaveImage writes
    assert strip_metadata(src, dst) is True
    with Image.open(dst) as image:
        assert image.text == {}
    assert _pixels(dst) == _pixels(src)
    assert dst.stat().st_size < src.stat().st_size


def test_animated_png_loses_its_comf_chunks_and_keeps_its_frames(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.png", tmp_path / "b.png"
    frames = [Image.new("RGB", (16, 16), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(src, save_all=True, append_images=frames[1:], pnginfo=apng_info(PNGINFO))
    assert b"comf" in src.read_bytes()
    assert strip_metadata(src, dst) is True
    assert b"comf" not in dst.read_bytes()
    with Image.open(dst) as image:
        assert image.n_frames == 3
    assert _pixels(dst, 2) == _pixels(src, 2)


def test_webp_exif_is_dropped_and_its_flag_cleared(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.webp", tmp_path / "b.webp"
    frames = [Image.new("RGB", (16, 16), (0, i * 60, 0)) for i in range(2)]
    frames[0].save(src, save_all=True, append_images=frames[1:], exif=webp_exif(PNGINFO), lossless=True)
    assert strip_metadata(src, dst) is True
    with Image.open(dst) as image:
        assert "exif" not in image.info and image.n_frames == 2
    assert b"EXIF" not in dst.read_bytes() and _pixels(dst, 1) == _pixels(src, 1)


def test_nothing_to_drop_or_another_format_writes_nothing(tmp_path: Path) -> None:
    clean, jpeg = tmp_path / "clean.png", tmp_path / "a.jpg"
    Image.new("RGB", (8, 8)).save(clean)
    Image.new("RGB", (8, 8)).save(jpeg)
    assert strip_metadata(clean, tmp_path / "out1") is False
    assert strip_metadata(jpeg, tmp_path / "out2") is False
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_a_truncated_file_is_an_error_not_a_broken_upload(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(src, pnginfo=png_info(PNGINFO))
    src.write_bytes(src.read_bytes()[:-30])
    with pytest.raises(ValueError, match="ends inside"):
        strip_metadata(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_flac_loses_its_vorbis_comments_and_keeps_every_sample(tmp_path: Path) -> None:
    import array

    import soundfile

    from handlers.local.comfyui._nodes._flac import encode_flac

    left = array.array("h", [(i * 37) % 2000 - 1000 for i in range(5000)])
    right = array.array("h", [(i * 91) % 3000 - 1500 for i in range(5000)])
    src, dst = tmp_path / "a.flac", tmp_path / "b.flac"
    src.write_bytes(encode_flac([left, right], 24000, {"prompt": json.dumps(PNGINFO["prompt"])}))
    assert b"KSampler" in src.read_bytes()
    assert strip_metadata(src, dst) is True
    assert b"KSampler" not in dst.read_bytes()
    before, rate = soundfile.read(str(src), dtype="int16")
    after, rate_after = soundfile.read(str(dst), dtype="int16")
    assert rate == rate_after == 24000 and (before == after).all()
    assert soundfile.info(str(dst)).frames == 5000
