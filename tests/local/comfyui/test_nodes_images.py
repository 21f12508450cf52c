"""Image nodes and image output nodes, run with a RecordingContext (no server)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from PIL import Image

from handlers.local.comfyui._node import Folders
from handlers.local.comfyui._nodes import NODE_CLASSES, RecordingContext
from handlers.local.comfyui._nodes._types import Images


@pytest.fixture
def ctx(folders: Folders) -> RecordingContext:
    return RecordingContext(folders)


async def run(ctx: RecordingContext, class_type: str, **inputs: object):  # type: ignore[no-untyped-def]
    return await NODE_CLASSES[class_type]().execute(ctx, **inputs)


async def empty(ctx: RecordingContext, width: int = 8, height: int = 6, batch_size: int = 1, color: int = 0) -> Images:
    out = await run(ctx, "EmptyImage", width=width, height=height, batch_size=batch_size, color=color)
    images = out.values[0]
    assert isinstance(images, Images)
    return images


async def test_empty_image_color_and_size(ctx: RecordingContext) -> None:
    images = await empty(ctx, width=40, height=30, batch_size=2, color=0x112233)
    assert len(images) == 2 and (images.width, images.height) == (40, 30)
    assert images.frames[1].getpixel((39, 29)) == (0x11, 0x22, 0x33)
    assert repr(images) == "IMAGE[2x30x40x3]"


async def test_empty_image_too_big_fails_like_torch(ctx: RecordingContext) -> None:
    with pytest.raises(RuntimeError, match=r"you tried to allocate 4398046511104 bytes"):
        await empty(ctx, width=16384, height=16384, batch_size=4096)


async def test_invert_then_blur(ctx: RecordingContext) -> None:
    red = await empty(ctx, width=16, height=16, color=0xFF0000)
    inverted = (await run(ctx, "ImageInvert", image=red)).values[0]
    assert inverted.frames[0].getpixel((3, 3)) == (0, 255, 255)
    # A sharp edge gets softened by the blur, a flat area stays flat.
    half = Image.new("RGB", (16, 16), (0, 0, 0))
    half.paste((255, 255, 255), (8, 0, 16, 16))
    blurred = (await run(ctx, "ImageBlur", image=Images((half,)), blur_radius=3, sigma=1.0)).values[0]
    assert 0 < blurred.frames[0].getpixel((7, 8))[0] < 255
    assert blurred.frames[0].getpixel((0, 8)) == (0, 0, 0)


async def test_save_image_names_files_in_subfolder_and_continues_counter(
    ctx: RecordingContext, folders: Folders
) -> None:
    images = await empty(ctx, batch_size=3)
    first = await run(ctx, "SaveImage", images=images, filename_prefix="probe/batch")
    assert first.ui == {
        "images": [{"filename": f"batch_{n:05}_.png", "subfolder": "probe", "type": "output"} for n in (1, 2, 3)]
    }
    (folders.output / "probe" / "batch_00041_.webp").write_bytes(b"")  # any extension counts
    (folders.output / "probe" / "other_00099_.png").write_bytes(b"")  # another prefix does not
    second = await run(ctx, "SaveImage", images=await empty(ctx), filename_prefix="probe/batch")
    assert second.ui == {"images": [{"filename": "batch_00042_.png", "subfolder": "probe", "type": "output"}]}
    assert (folders.output / "probe" / "batch_00042_.png").is_file()


async def test_save_image_without_subfolder(ctx: RecordingContext, folders: Folders) -> None:
    out = await run(ctx, "SaveImage", images=await empty(ctx), filename_prefix="ComfyUI")
    assert out.ui == {"images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]}
    with Image.open(folders.output / "ComfyUI_00001_.png") as img:
        assert img.size == (8, 6)


async def test_save_image_writes_png_text_chunks(folders: Folders) -> None:
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 77}}}
    ctx = RecordingContext(
        folders, pnginfo={"prompt": prompt, "workflow": {"nodes": [], "version": 0.4}, "custom_key": {"a": 1}}
    )
    out = await run(ctx, "SaveImage", images=await empty(ctx), filename_prefix="probe/meta")
    with Image.open(folders.output / "probe" / out.ui["images"][0]["filename"]) as img:
        text = dict(img.text)  # type: ignore[attr-defined]
    # Exactly ``json.dumps`` of each value, as transcript 99 recorded.
    assert text == {
        "prompt": json.dumps(prompt),
        "workflow": '{"nodes": [], "version": 0.4}',
        "custom_key": '{"a": 1}',
    }


async def test_save_image_refuses_prefix_outside_output(ctx: RecordingContext, folders: Folders) -> None:
    with pytest.raises(Exception, match=r"^\*\*\*\* ERROR: Saving image outside the output folder is not allowed\."):
        await run(ctx, "SaveImage", images=await empty(ctx), filename_prefix="../escape")
    assert not (folders.output.parent / "escape_00001_.png").exists()


async def test_preview_image_writes_temp_file_with_random_prefix(ctx: RecordingContext, folders: Folders) -> None:
    out = await run(ctx, "PreviewImage", images=await empty(ctx, batch_size=2))
    entries = out.ui["images"]
    assert [e["type"] for e in entries] == ["temp", "temp"] and {e["subfolder"] for e in entries} == {""}
    match = re.fullmatch(r"ComfyUI_temp_([a-z]{5})_00001_\.png", entries[0]["filename"])
    assert match, entries
    assert entries[1]["filename"] == f"ComfyUI_temp_{match[1]}_00002_.png"
    assert (folders.temp / entries[1]["filename"]).is_file()


async def test_animated_webp_and_png_share_the_counter(ctx: RecordingContext, folders: Folders) -> None:
    frames = Images(tuple(Image.new("RGB", (32, 32), (i * 80, 0, 0)) for i in range(3)))
    webp = await run(
        ctx,
        "SaveAnimatedWEBP",
        images=frames,
        filename_prefix="probe/anim",
        fps=6.0,
        lossless=True,
        quality=80,
        method="default",
    )
    png = await run(ctx, "SaveAnimatedPNG", images=frames, filename_prefix="probe/anim", fps=6.0, compress_level=4)
    assert webp.ui == {
        "images": [{"filename": "anim_00001_.webp", "subfolder": "probe", "type": "output"}],
        "animated": [True],
    }
    assert png.ui == {
        "images": [{"filename": "anim_00002_.png", "subfolder": "probe", "type": "output"}],
        "animated": [True],
    }
    for name, fmt in (("anim_00001_.webp", "WEBP"), ("anim_00002_.png", "PNG")):
        with Image.open(folders.output / "probe" / name) as img:
            assert img.format == fmt
            assert getattr(img, "n_frames", 1) == 3


def _rgba_file(folders: Folders, name: str = "in.png") -> Path:
    image = Image.new("RGBA", (20, 10), (10, 20, 30, 255))
    image.paste((200, 100, 50, 0), (0, 0, 5, 10))  # a transparent strip on the left
    path = folders.input / name
    image.save(path)
    return path


async def test_load_image_gives_rgb_and_inverted_alpha_mask(ctx: RecordingContext, folders: Folders) -> None:
    _rgba_file(folders)
    images, masks = (await run(ctx, "LoadImage", image="in.png")).values
    assert (images.width, images.height) == (20, 10)
    assert images.frames[0].getpixel((10, 5)) == (10, 20, 30)
    assert masks.frames[0].getpixel((1, 1)) == 255  # transparent: to be painted
    assert masks.frames[0].getpixel((10, 5)) == 0


async def test_load_image_without_alpha_gives_the_64px_zero_mask(ctx: RecordingContext, folders: Folders) -> None:
    Image.new("RGB", (20, 10), (1, 2, 3)).save(folders.input / "flat.jpg")
    images, masks = (await run(ctx, "LoadImage", image="flat.jpg")).values
    assert (masks.width, masks.height) == (64, 64)
    assert masks.frames[0].getextrema() == (0, 0)
    assert images.frames[0].size == (20, 10)


async def test_load_image_reads_every_frame_and_annotated_names(ctx: RecordingContext, folders: Folders) -> None:
    frames = [Image.new("RGB", (8, 8), (i * 100, 0, 0)) for i in range(3)]
    frames[0].save(folders.output / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    images, masks = (await run(ctx, "LoadImage", image="anim.webp [output]")).values
    assert len(images) == 3 and len(masks) == 3
    assert images.frames[2].getpixel((0, 0))[0] == 200


def test_load_image_validation_and_fingerprint(folders: Folders) -> None:
    cls = NODE_CLASSES["LoadImage"]
    validated = cls.VALIDATED_INPUTS
    assert validated == {"image"}
    assert cls.validate_inputs({"image": "does_not_exist.png"}, folders) == "Invalid image file: does_not_exist.png"
    assert cls.validate_inputs({"image": "../../etc/passwd"}, folders) == "Invalid image file: ../../etc/passwd"
    path = _rgba_file(folders)
    assert cls.validate_inputs({"image": "in.png"}, folders) is None
    before = cls.fingerprint({"image": "in.png"}, folders)
    assert before == cls.fingerprint({"image": "in.png"}, folders)
    Image.new("RGB", (3, 3)).save(path)
    assert cls.fingerprint({"image": "in.png"}, folders) != before
    assert NODE_CLASSES["LoadImageMask"].validate_inputs({"image": "x.png", "channel": "red"}, folders) == (
        "Invalid image file: x.png"
    )


async def test_load_image_mask_channels(ctx: RecordingContext, folders: Folders) -> None:
    _rgba_file(folders)
    (alpha,) = (await run(ctx, "LoadImageMask", image="in.png", channel="alpha")).values
    (red,) = (await run(ctx, "LoadImageMask", image="in.png", channel="red")).values
    assert alpha.frames[0].getpixel((1, 1)) == 255 and alpha.frames[0].getpixel((10, 1)) == 0
    assert red.frames[0].getpixel((10, 1)) == 10


async def test_scale_nodes(ctx: RecordingContext) -> None:
    src = await empty(ctx, width=40, height=20, batch_size=2)
    (out,) = (
        await run(ctx, "ImageScale", image=src, upscale_method="bilinear", width=0, height=10, crop="disabled")
    ).values
    assert (out.width, out.height, len(out)) == (20, 10, 2)
    (out,) = (
        await run(ctx, "ImageScale", image=src, upscale_method="lanczos", width=30, height=30, crop="center")
    ).values
    assert (out.width, out.height) == (30, 30)
    (out,) = (await run(ctx, "ImageScaleBy", image=src, upscale_method="nearest-exact", scale_by=1.5)).values
    assert (out.width, out.height) == (60, 30)


async def test_crop_clamps_like_comfyui(ctx: RecordingContext) -> None:
    src = Images((Image.new("RGB", (10, 10)),))
    src.frames[0].putpixel((9, 9), (255, 255, 255))
    (out,) = (await run(ctx, "ImageCrop", image=src, width=4, height=4, x=8, y=20)).values
    assert (out.width, out.height) == (2, 1)  # x kept, y clamped to 9, box cut at the edges
    assert out.frames[0].getpixel((1, 0)) == (255, 255, 255)


async def test_pad_for_outpaint_image_and_feathered_mask(ctx: RecordingContext) -> None:
    src = await empty(ctx, width=100, height=100, color=0xFFFFFF)
    image, mask = (
        await run(ctx, "ImagePadForOutpaint", image=src, left=8, top=0, right=0, bottom=16, feathering=10)
    ).values
    assert (image.width, image.height) == (108, 116)
    assert image.frames[0].getpixel((2, 2)) == (128, 128, 128)
    assert image.frames[0].getpixel((50, 50)) == (255, 255, 255)
    m = mask.frames[0]
    assert (m.width, m.height) == (108, 116)
    assert m.getpixel((2, 2)) == 255 and m.getpixel((50, 110)) == 255  # new border
    assert m.getpixel((60, 50)) == 0  # deep inside the original
    assert 0 < m.getpixel((9, 50)) < 255  # feathered next to the padded left side
    assert m.getpixel((60, 1)) == 0  # top was not padded: no feathering there


async def test_composite_masked(ctx: RecordingContext) -> None:
    dest = await empty(ctx, width=10, height=10, color=0x000000)
    src = await empty(ctx, width=4, height=4, color=0xFF0000)
    (out,) = (
        await run(ctx, "ImageCompositeMasked", destination=dest, source=src, x=2, y=3, resize_source=False)
    ).values
    assert out.frames[0].getpixel((2, 3)) == (255, 0, 0) and out.frames[0].getpixel((1, 3)) == (0, 0, 0)
    half = Image.new("L", (4, 4), 0)
    half.paste(255, (0, 0, 2, 4))
    from handlers.local.comfyui._nodes._types import Masks

    (out,) = (
        await run(
            ctx,
            "ImageCompositeMasked",
            destination=dest,
            source=src,
            x=0,
            y=0,
            resize_source=False,
            mask=Masks((half,)),
        )
    ).values
    assert out.frames[0].getpixel((0, 0)) == (255, 0, 0) and out.frames[0].getpixel((3, 0)) == (0, 0, 0)
    (out,) = (await run(ctx, "ImageCompositeMasked", destination=dest, source=src, x=0, y=0, resize_source=True)).values
    assert out.frames[0].getpixel((9, 9)) == (255, 0, 0)


async def test_get_image_size_sends_text(ctx: RecordingContext) -> None:
    src = await empty(ctx, width=40, height=30, batch_size=2, color=3)
    out = await run(ctx, "GetImageSize", image=src, unique_id="2")
    assert out.values == (40, 30, 2)
    assert ctx.texts == ["width: 40, height: 30\n batch size: 2"]  # transcript 95


async def test_load_image_from_an_upload_subfolder(ctx: RecordingContext, folders: Folders) -> None:
    (folders.input / "probe_sub").mkdir()
    Image.new("RGB", (5, 4), (9, 9, 9)).save(folders.input / "probe_sub" / "sub.png")  # transcript 60
    assert NODE_CLASSES["LoadImage"].validate_inputs({"image": "probe_sub/sub.png"}, folders) is None
    images, _ = (await run(ctx, "LoadImage", image="probe_sub/sub.png")).values
    assert images.frames[0].size == (5, 4)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


async def test_animated_outputs_carry_comfyui_metadata(folders: Folders) -> None:
    pnginfo = {"prompt": {"1": {"class_type": "EmptyImage"}}, "workflow": {"nodes": []}, "extra": 1}
    ctx = RecordingContext(folders, pnginfo=pnginfo)
    frames = Images(tuple(Image.new("RGB", (8, 8), (i * 90, 0, 0)) for i in range(2)))
    await run(ctx, "SaveAnimatedPNG", images=frames, filename_prefix="a", fps=6.0, compress_level=4)
    chunks = _png_chunks((folders.output / "a_00001_.png").read_bytes())
    kinds = [kind for kind, _ in chunks]
    comf = [body for kind, body in chunks if kind == b"comf"]
    assert comf == [b'prompt\0{"1": {"class_type": "EmptyImage"}}', b'workflow\0{"nodes": []}', b"extra\x001"]
    assert kinds.index(b"comf") > max(i for i, k in enumerate(kinds) if k in (b"IDAT", b"fdAT"))
    await run(
        ctx,
        "SaveAnimatedWEBP",
        images=frames,
        filename_prefix="a",
        fps=6.0,
        lossless=False,
        quality=80,
        method="fastest",
    )
    with Image.open(folders.output / "a_00002_.webp") as img:
        exif = img.getexif()
    assert exif[0x0110] == 'prompt:{"1": {"class_type": "EmptyImage"}}'
    assert exif[0x010F] == 'workflow:{"nodes": []}'
    assert exif[0x010E] == "extra:1"
