"""Simulated model nodes: loaders, text encoding, samplers and the VAE, run with a RecordingContext."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from handlers.local.comfyui._node import Folders, Interrupted, NodeOutput
from handlers.local.comfyui._nodes import NODE_CLASSES, RecordingContext
from handlers.local.comfyui._nodes._types import Clip, Conditioning, Images, Latent, Lora, Masks, Model, Vae


@pytest.fixture
def ctx(folders: Folders) -> RecordingContext:
    return RecordingContext(folders)


async def run(ctx: RecordingContext, class_type: str, **inputs: Any) -> NodeOutput:
    return await NODE_CLASSES[class_type]().execute(ctx, **inputs)


async def txt2img(
    ctx: RecordingContext,
    *,
    seed: int = 1,
    text: str = "a cat",
    lora: float = 0.0,
    steps: int = 3,
    size: tuple[int, int] = (64, 48),
    denoise: float = 1.0,
    latent: Latent | None = None,
) -> Images:
    model, clip, vae = (await run(ctx, "CheckpointLoaderSimple", ckpt_name="sd15.safetensors")).values
    model, clip = (
        await run(
            ctx,
            "LoraLoader",
            model=model,
            clip=clip,
            lora_name="ink.safetensors",
            strength_model=lora,
            strength_clip=lora,
        )
    ).values
    (positive,) = (await run(ctx, "CLIPTextEncode", text=text, clip=clip)).values
    (negative,) = (await run(ctx, "CLIPTextEncode", text="", clip=clip)).values
    if latent is None:
        (latent,) = (await run(ctx, "EmptyLatentImage", width=size[0], height=size[1], batch_size=1)).values
    (sampled,) = (
        await run(
            ctx,
            "KSampler",
            model=model,
            seed=seed,
            steps=steps,
            cfg=7.0,
            sampler_name="euler",
            scheduler="normal",
            positive=positive,
            negative=negative,
            latent_image=latent,
            denoise=denoise,
        )
    ).values
    (image,) = (await run(ctx, "VAEDecode", samples=sampled, vae=vae)).values
    assert isinstance(image, Images)
    return image


def difference(a: Images, b: Images) -> float:
    """Mean absolute difference per channel, 0-255."""
    return sum(ImageStat.Stat(ImageChops.difference(a.frames[0], b.frames[0])).mean) / 3


async def test_loaders_record_files_and_loras(ctx: RecordingContext) -> None:
    model, clip, vae = (await run(ctx, "CheckpointLoaderSimple", ckpt_name="sd15.safetensors")).values
    assert (model, clip, vae) == (Model("sd15.safetensors"), Clip(("sd15.safetensors",)), Vae("sd15.safetensors"))
    model2, clip2 = (
        await run(
            ctx, "LoraLoader", model=model, clip=clip, lora_name="a.safetensors", strength_model=0.5, strength_clip=0
        )
    ).values
    assert model2.loras == (Lora("a.safetensors", 0.5),) and clip2.loras == ()
    (model3,) = (
        await run(ctx, "LoraLoaderModelOnly", model=model2, lora_name="b.safetensors", strength_model=1.0)
    ).values
    assert [lora.name for lora in model3.loras] == ["a.safetensors", "b.safetensors"]
    (unet,) = (await run(ctx, "UNETLoader", unet_name="flux.safetensors", weight_dtype="fp8_e4m3fn")).values
    assert unet == Model("flux.safetensors", weight_dtype="fp8_e4m3fn")
    (dual,) = (
        await run(ctx, "DualCLIPLoader", clip_name1="l.safetensors", clip_name2="t5.safetensors", type="flux")
    ).values
    assert dual == Clip(("l.safetensors", "t5.safetensors"), "flux")
    (single,) = (await run(ctx, "CLIPLoader", clip_name="t5.safetensors", type="sd3", device="cpu")).values
    assert single == Clip(("t5.safetensors",), "sd3")
    (cond,) = (await run(ctx, "CLIPTextEncode", text="hello", clip=single)).values
    assert cond == Conditioning(("hello",), single)
    assert (await run(ctx, "VAELoader", vae_name="pixel_space")).values == (Vae("pixel_space"),)


async def test_values_print_compactly(ctx: RecordingContext) -> None:
    (latent,) = (await run(ctx, "EmptySD3LatentImage", width=1024, height=1024, batch_size=2)).values
    assert repr(latent).startswith("Latent(width=1024, height=1024, batch_size=2, content=")
    assert len(repr(latent)) < 200
    assert repr(Masks((Image.new("L", (3, 2)),))) == "MASK[1x2x3]"


async def test_sampler_reports_each_step_with_a_jpeg_preview(ctx: RecordingContext) -> None:
    await txt2img(ctx, steps=4)
    assert [(c.value, c.total) for c in ctx.progress_calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for call in ctx.progress_calls:
        assert call.preview_format == "JPEG" and call.preview is not None
        with Image.open(io.BytesIO(call.preview)) as preview:
            # Latent size (8x6) scaled to fit 512x512, as ComfyUI's server sends latent2rgb previews.
            assert preview.format == "JPEG" and preview.size == (512, 384)


async def test_sampler_output_is_deterministic_and_depends_on_every_input(ctx: RecordingContext) -> None:
    base = await txt2img(ctx)
    again = await txt2img(ctx)
    assert base.frames[0].tobytes() == again.frames[0].tobytes()
    assert (base.width, base.height) == (64, 48)
    for changed in (
        await txt2img(ctx, seed=2),
        await txt2img(ctx, text="a dog"),
        await txt2img(ctx, lora=0.8),
        await txt2img(ctx, steps=5),
    ):
        assert difference(base, changed) > 10  # visibly different, not one pixel off


async def test_interrupt_is_raised_from_progress(folders: Folders) -> None:
    ctx = RecordingContext(folders, interrupt_at=3)
    with pytest.raises(Interrupted):
        await txt2img(ctx, steps=200)
    assert [c.value for c in ctx.progress_calls] == [1, 2, 3]


async def test_empty_latent_decodes_to_flat_gray_in_whole_latent_pixels(ctx: RecordingContext) -> None:
    (latent,) = (await run(ctx, "EmptyLatentImage", width=20, height=100, batch_size=2)).values
    (image,) = (await run(ctx, "VAEDecode", samples=latent, vae=Vae("x"))).values
    assert len(image) == 2 and (image.width, image.height) == (16, 96)
    assert image.frames[1].getextrema() == ((128, 128),) * 3


async def test_img2img_denoise_controls_how_much_changes(ctx: RecordingContext) -> None:
    source = Images((Image.new("RGB", (64, 48), (30, 60, 90)),))
    (latent,) = (await run(ctx, "VAEEncode", pixels=source, vae=Vae("sd15.safetensors"))).values
    (roundtrip,) = (await run(ctx, "VAEDecode", samples=latent, vae=Vae("sd15.safetensors"))).values
    assert difference(roundtrip, source) == 0
    light = await txt2img(ctx, latent=latent, denoise=0.2)
    heavy = await txt2img(ctx, latent=latent, denoise=1.0)
    assert difference(light, source) < difference(heavy, source)
    assert 0 < difference(light, source) < 40


async def test_noise_mask_limits_the_change_to_the_mask(ctx: RecordingContext) -> None:
    source = Images((Image.new("RGB", (32, 32), (30, 60, 90)),))
    (latent,) = (await run(ctx, "VAEEncode", pixels=source, vae=Vae("v"))).values
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 32))
    (masked,) = (await run(ctx, "SetLatentNoiseMask", samples=latent, mask=Masks((mask,)))).values
    image = await txt2img(ctx, latent=masked, denoise=1.0)
    right = image.frames[0].crop((16, 0, 32, 32))
    assert right.getextrema() == ((30, 30), (60, 60), (90, 90))
    assert image.frames[0].crop((0, 0, 16, 32)).getextrema() != right.getextrema()


async def test_ksampler_advanced_runs_only_its_step_window(ctx: RecordingContext) -> None:
    model, clip, _ = (await run(ctx, "CheckpointLoaderSimple", ckpt_name="m")).values
    (cond,) = (await run(ctx, "CLIPTextEncode", text="x", clip=clip)).values
    (latent,) = (await run(ctx, "EmptyLatentImage", width=16, height=16, batch_size=1)).values
    common: dict[str, Any] = {
        "model": model,
        "add_noise": "enable",
        "noise_seed": 5,
        "steps": 10,
        "cfg": 8.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "positive": cond,
        "negative": cond,
        "latent_image": latent,
        "return_with_leftover_noise": "disable",
    }
    (out,) = (await run(ctx, "KSamplerAdvanced", **common, start_at_step=4, end_at_step=10000)).values
    assert [c.value for c in ctx.progress_calls] == [1, 2, 3, 4, 5, 6] and ctx.progress_calls[-1].total == 6
    assert out.content != latent.content
    ctx.progress_calls.clear()
    (same,) = (await run(ctx, "KSamplerAdvanced", **common, start_at_step=10, end_at_step=10000)).values
    assert same is latent and ctx.progress_calls == []


async def test_clip_text_encode_without_clip_fails_like_comfyui(ctx: RecordingContext) -> None:
    with pytest.raises(RuntimeError, match="clip input is invalid: None"):
        await run(ctx, "CLIPTextEncode", text="x", clip=None)


async def test_save_latent_writes_a_safetensors_file(folders: Folders) -> None:
    ctx = RecordingContext(folders, pnginfo={"prompt": {"1": {}}})
    (latent,) = (await run(ctx, "EmptyLatentImage", width=64, height=48, batch_size=2)).values
    out = await run(ctx, "SaveLatent", samples=latent, filename_prefix="probe/latent")
    assert out.ui == {"latents": [{"filename": "latent_00001_.latent", "subfolder": "probe", "type": "output"}]}
    data = (folders.output / "probe" / "latent_00001_.latent").read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    assert header["__metadata__"] == {"prompt": '{"1": {}}'}
    assert header["latent_tensor"] == {"dtype": "F32", "shape": [2, 4, 6, 8], "data_offsets": [0, 2 * 4 * 6 * 8 * 4]}
    assert header["latent_format_version_0"]["shape"] == [0]
    assert len(data) == 8 + length + 2 * 4 * 6 * 8 * 4


@pytest.mark.parametrize(
    ("name", "scale"),
    [("tiny-compact-x2-random.safetensors", 2), ("4x-UltraSharp.pth", 4), ("RealESRGAN_x4plus.pth", 4), ("up.pth", 4)],
)
def test_upscale_scale_from_the_file_name(name: str, scale: int) -> None:
    from handlers.local.comfyui._nodes._upscale import scale_of

    assert scale_of(name) == scale


async def test_upscale_with_model_reports_one_progress_per_tile(ctx: RecordingContext) -> None:
    (model,) = (await run(ctx, "UpscaleModelLoader", model_name="tiny-compact-x2-random.safetensors")).values
    (image,) = (await run(ctx, "EmptyImage", width=1024, height=1024, batch_size=1, color=0x808080)).values
    (big,) = (await run(ctx, "ImageUpscaleWithModel", upscale_model=model, image=image)).values
    assert (big.width, big.height) == (2048, 2048)
    assert [(c.value, c.total, c.preview) for c in ctx.progress_calls] == [(n, 9, None) for n in range(1, 10)]


async def test_save_image_websocket_streams_pngs_as_progress(ctx: RecordingContext) -> None:
    (images,) = (await run(ctx, "EmptyImage", width=32, height=32, batch_size=3, color=0x00FF00)).values
    out = await run(ctx, "SaveImageWebsocket", images=images)
    assert out.ui is None and out.values == ()
    assert [(c.value, c.total, c.preview_format) for c in ctx.progress_calls] == [
        (0, 3, "PNG"),
        (1, 3, "PNG"),
        (2, 3, "PNG"),
    ]
    assert ctx.progress_calls[0].preview is not None
    with Image.open(io.BytesIO(ctx.progress_calls[0].preview)) as png:
        assert png.format == "PNG" and png.size == (32, 32) and png.convert("RGB").getpixel((0, 0)) == (0, 255, 0)
