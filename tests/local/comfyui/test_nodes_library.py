"""The nodes the library's templates added to the emulator, run serverless with a RecordingContext: custom sampling,
inpaint/outpaint, image-to-video, LoRA training, audio, and the custom packs (IPAdapter, PuLID, F5-TTS)."""

from __future__ import annotations

import array
import json
import struct
from typing import Any

import pytest
from PIL import Image, ImageDraw

from handlers.local.comfyui._node import Folders, NodeOutput
from handlers.local.comfyui._nodes import NODE_CLASSES, RecordingContext
from handlers.local.comfyui._nodes._types import Audio, Clip, Conditioning, Images, Latent, Masks, Model, Vae
from handlers.local.comfyui._nodes._wav import decode_wav, encode_wav


@pytest.fixture
def ctx(folders: Folders) -> RecordingContext:
    return RecordingContext(folders)


async def run(ctx: RecordingContext, class_type: str, **inputs: Any) -> NodeOutput:
    return await NODE_CLASSES[class_type]().execute(ctx, **inputs)


def model_file(folders: Folders, name: str) -> None:
    path = folders.models / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def images(*colours: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Images:
    return Images(tuple(Image.new("RGB", size, c) for c in colours))


CLIP = Clip(("clip_l.safetensors",))
VAE = Vae("ae.safetensors")


async def test_custom_sampling_steps_once_per_sigma_and_follows_the_guidance(ctx: RecordingContext) -> None:
    model = Model("flux1-dev.safetensors")
    latent = Latent(64, 64, 1, 7)

    async def flux(guidance: float, steps: int = 4, denoise: float = 1.0) -> Images:
        (cond,) = (
            await run(ctx, "FluxGuidance", conditioning=Conditioning(("a fox",), CLIP), guidance=guidance)
        ).values
        (noise,) = (await run(ctx, "RandomNoise", noise_seed=3)).values
        (sampler,) = (await run(ctx, "KSamplerSelect", sampler_name="euler")).values
        (sigmas,) = (
            await run(ctx, "BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=denoise)
        ).values
        (guider,) = (await run(ctx, "BasicGuider", model=model, conditioning=cond)).values
        out, denoised = (
            await run(
                ctx,
                "SamplerCustomAdvanced",
                noise=noise,
                guider=guider,
                sampler=sampler,
                sigmas=sigmas,
                latent_image=latent,
            )
        ).values
        assert out == denoised
        (image,) = (await run(ctx, "VAEDecode", samples=out, vae=VAE)).values
        assert isinstance(image, Images)
        return image

    first = await flux(3.5)
    assert [(c.value, c.total) for c in ctx.progress_calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert first.frames[0].tobytes() == (await flux(3.5)).frames[0].tobytes()
    assert first.frames[0].tobytes() != (await flux(5.0)).frames[0].tobytes()
    ctx.progress_calls.clear()
    await flux(3.5, denoise=0.0)  # an empty schedule: nothing runs, the latent comes back as it was
    assert ctx.progress_calls == []


async def test_model_patches_change_the_picture(ctx: RecordingContext) -> None:
    model = Model("qwen_image.safetensors")
    (shifted,) = (await run(ctx, "ModelSamplingAuraFlow", model=model, shift=3.1)).values
    (other,) = (await run(ctx, "ModelSamplingAuraFlow", model=model, shift=1.0)).values
    (diff,) = (await run(ctx, "DifferentialDiffusion", model=model)).values
    assert len({model, shifted, other, diff}) == 4
    (zeroed,) = (await run(ctx, "ConditioningZeroOut", conditioning=Conditioning(("text",), CLIP))).values
    assert zeroed.texts == () and ("zeroed", True) in zeroed.extras


async def test_grow_mask_expands_and_shrinks(ctx: RecordingContext) -> None:
    plane = Image.new("L", (32, 32), 0)
    plane.putpixel((16, 16), 255)
    (grown,) = (await run(ctx, "GrowMask", mask=Masks((plane,)), expand=2, tapered_corners=False)).values
    assert grown.frames[0].getbbox() == (14, 14, 19, 19)  # a 5x5 square
    (tapered,) = (await run(ctx, "GrowMask", mask=Masks((plane,)), expand=2, tapered_corners=True)).values
    assert tapered.frames[0].getpixel((14, 14)) == 0 and tapered.frames[0].getpixel((14, 16)) == 255  # a diamond
    (shrunk,) = (await run(ctx, "GrowMask", mask=grown, expand=-1, tapered_corners=False)).values
    assert shrunk.frames[0].getbbox() == (15, 15, 18, 18)


async def test_inpainting_repaints_only_inside_the_mask(ctx: RecordingContext) -> None:
    photo = images((200, 30, 30), size=(70, 64))  # cropped to whole 8-pixel blocks: 64x64
    plane = Image.new("L", (70, 64), 0)
    ImageDraw.Draw(plane).rectangle((16, 16, 47, 47), fill=255)
    positive, negative = Conditioning(("flowers",), CLIP), Conditioning(("",), CLIP)
    pos, neg, latent = (
        await run(
            ctx,
            "InpaintModelConditioning",
            positive=positive,
            negative=negative,
            vae=VAE,
            pixels=photo,
            mask=Masks((plane,)),
            noise_mask=True,
        )
    ).values
    assert dict(pos.extras)["concat"] == dict(neg.extras)["concat"] and (latent.width, latent.height) == (64, 64)
    (sampled,) = (
        await run(
            ctx,
            "KSampler",
            model=Model("sd_xl_base_1.0.safetensors"),
            seed=1,
            steps=2,
            cfg=6.0,
            sampler_name="euler",
            scheduler="normal",
            positive=pos,
            negative=neg,
            latent_image=latent,
            denoise=1.0,
        )
    ).values
    (out,) = (await run(ctx, "VAEDecode", samples=sampled, vae=VAE)).values
    frame = out.frames[0]
    assert frame.size == (64, 64)
    assert frame.getpixel((2, 2)) == (200, 30, 30)  # outside the mask: untouched
    assert frame.getpixel((32, 32)) != (200, 30, 30)  # inside: repainted


async def test_encode_for_inpaint_greys_the_grown_mask(ctx: RecordingContext) -> None:
    (padded, mask) = (
        await run(
            ctx, "ImagePadForOutpaint", image=images((0, 0, 255)), left=16, top=0, right=16, bottom=0, feathering=0
        )
    ).values
    (latent,) = (await run(ctx, "VAEEncodeForInpaint", pixels=padded, vae=VAE, mask=mask, grow_mask_by=4)).values
    assert (latent.width, latent.height) == (96, 48)
    assert latent.source.frames[0].getpixel((40, 20)) == (0, 0, 255)
    assert latent.source.frames[0].getpixel((18, 20)) == (128, 128, 128)  # grown 4 px into the picture
    assert latent.noise_mask is not None and latent.noise_mask.frames[0].getpixel((19, 20)) == 255


async def test_image_batch_and_stitch(ctx: RecordingContext) -> None:
    a, b = images((255, 0, 0)), images((0, 255, 0), size=(32, 32))
    (batch,) = (await run(ctx, "ImageBatch", image1=a, image2=b)).values
    assert len(batch) == 2 and (batch.width, batch.height) == (64, 48)
    stitch = {"match_image_size": True, "spacing_width": 4, "spacing_color": "white"}
    (right,) = (await run(ctx, "ImageStitch", image1=a, image2=b, direction="right", **stitch)).values
    assert (right.width, right.height) == (64 + 4 + 48, 48)
    assert right.frames[0].getpixel((65, 10)) == (255, 255, 255)
    (down,) = (await run(ctx, "ImageStitch", image1=a, image2=b, direction="up", **stitch)).values
    assert (down.width, down.height) == (64, 64 + 4 + 48) and down.frames[0].getpixel((0, 0)) == (0, 255, 0)
    (alone,) = (await run(ctx, "ImageStitch", image1=a, direction="right", **stitch)).values
    assert alone is a


async def test_wan_image_to_video_decodes_length_frames_from_the_start_image(ctx: RecordingContext) -> None:
    start = images((10, 200, 10), size=(100, 60))
    cond = Conditioning(("waves",), CLIP)
    pos, _neg, latent = (
        await run(
            ctx,
            "WanImageToVideo",
            positive=cond,
            negative=cond,
            vae=VAE,
            width=64,
            height=48,
            length=19,
            batch_size=1,
            start_image=start,
        )
    ).values
    assert latent.frames == 17 and "concat" in dict(pos.extras)  # (19 - 1) // 4 * 4 + 1
    (video,) = (await run(ctx, "VAEDecode", samples=latent, vae=VAE)).values
    assert len(video) == 17 and (video.width, video.height) == (64, 48)
    assert video.frames[0].getpixel((30, 20)) == (10, 200, 10)  # the first frame is the start image
    assert video.frames[-1].tobytes() != video.frames[-2].tobytes()  # and it moves


def write_dataset(folders: Folders) -> None:
    root = folders.input / "set"
    (root / "3_extra").mkdir(parents=True)
    Image.new("RGB", (40, 30), (255, 0, 0)).save(root / "a.png")
    (root / "a.txt").write_text("ohwx, portrait\n")
    Image.new("RGB", (30, 40), (0, 0, 255)).save(root / "3_extra" / "b.jpg")


async def test_lora_training_end_to_end(ctx: RecordingContext, folders: Folders) -> None:
    write_dataset(folders)
    loaded = await run(
        ctx, "LoadImageTextSetFromFolderNode", folder="set", clip=CLIP, resize_method="Crop", width=32, height=32
    )
    pixels, captions = loaded.values
    # b.jpg three times (a kohya-style "3_extra" folder, listed first) without a caption, then a.png.
    assert len(pixels) == 4 and (pixels.width, pixels.height) == (32, 32)
    assert captions.texts == ("", "", "", "ohwx, portrait")
    (latents,) = (await run(ctx, "VAEEncode", pixels=pixels, vae=VAE)).values
    trained = await run(
        ctx,
        "TrainLoraNode",
        model=Model("sd_xl_base_1.0.safetensors"),
        latents=latents,
        positive=captions,
        batch_size=1,
        grad_accumulation_steps=2,
        steps=5,
        learning_rate=0.0001,
        rank=4,
        optimizer="AdamW",
        loss_function="MSE",
        seed=1,
        training_dtype="bf16",
        lora_dtype="bf16",
        algorithm="LoRA",
        gradient_checkpointing=True,
        existing_lora="[None]",
    )
    _model, lora, loss, steps = trained.values
    assert [(c.value, c.total) for c in ctx.progress_calls] == [(i, 5) for i in range(1, 6)]
    assert steps == 5 and len(loss.loss) == 10  # a loss per micro-batch
    saved = await run(ctx, "SaveLoRANode", lora=lora, prefix="loras/ava", steps=steps)
    assert saved.ui is None  # nothing in /history: the file must be collected from the folder
    (path,) = (folders.output / "loras").iterdir()
    assert path.name == "ava_5_steps_00001_.safetensors"
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    assert "__metadata__" not in header
    down = header["diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.lora_down.weight"]
    assert down["dtype"] == "BF16" and down["shape"] == [4, 640]
    graph = await run(ctx, "LossGraphNode", loss=loss, filename_prefix="loss_graph")
    assert graph.ui is not None
    (entry,) = graph.ui["images"]
    assert entry["type"] == "temp" and entry["subfolder"] == "" and entry["filename"].startswith("loss_graph_")
    with Image.open(folders.temp / entry["filename"]) as drawn:
        assert drawn.size == (840, 520)


async def test_a_dataset_of_mixed_sizes_needs_a_resize_method(ctx: RecordingContext, folders: Folders) -> None:
    write_dataset(folders)
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        await run(ctx, "LoadImageTextSetFromFolderNode", folder="set", clip=CLIP)


async def test_load_audio_reads_wav(ctx: RecordingContext, folders: Folders) -> None:
    samples = array.array("h", [0, 1000, -1000, 32767, -32768, 5])
    (folders.input / "voice.wav").write_bytes(encode_wav((samples, samples[::-1]), 22050))
    (audio,) = (await run(ctx, "LoadAudio", audio="voice.wav")).values
    assert audio.sample_rate == 22050 and list(audio.channels[0]) == list(samples)
    assert list(audio.channels[1]) == list(samples[::-1])
    assert NODE_CLASSES["LoadAudio"].validate_inputs({"audio": "missing.wav"}, folders) == (
        "Invalid audio file: missing.wav"
    )
    with pytest.raises(RuntimeError, match="Could not decode"):
        decode_wav(b"not a wav")


async def test_ipadapter_faceid_finds_its_files_by_pattern(ctx: RecordingContext, folders: Folders) -> None:
    model = Model("sd_xl_base_1.0.safetensors")
    loader = {"model": model, "preset": "FACEID PLUS V2", "lora_strength": 0.6, "provider": "CUDA"}
    with pytest.raises(Exception, match="ClipVision model not found"):
        await run(ctx, "IPAdapterUnifiedLoaderFaceID", **loader)
    model_file(folders, "clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    with pytest.raises(Exception, match="IPAdapter model not found"):
        await run(ctx, "IPAdapterUnifiedLoaderFaceID", **loader)
    model_file(folders, "ipadapter/ip-adapter-faceid-plusv2_sdxl.bin")
    with pytest.raises(Exception, match="LoRA model not found"):
        await run(ctx, "IPAdapterUnifiedLoaderFaceID", **loader)
    model_file(folders, "loras/ip-adapter-faceid-plusv2_sdxl_lora.safetensors")
    patched, pipeline = (await run(ctx, "IPAdapterUnifiedLoaderFaceID", **loader)).values
    assert [(lora.name, lora.strength) for lora in patched.loras] == [
        ("ip-adapter-faceid-plusv2_sdxl_lora.safetensors", 0.6)
    ]
    apply = {"weight": 0.85, "weight_faceidv2": 1.0, "weight_type": "linear", "combine_embeds": "average"}
    apply |= {"start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only"}
    one, faces = (
        await run(ctx, "IPAdapterFaceID", model=patched, ipadapter=pipeline, image=images((1, 2, 3)), **apply)
    ).values
    two, _ = (
        await run(ctx, "IPAdapterFaceID", model=patched, ipadapter=pipeline, image=images((9, 9, 9)), **apply)
    ).values
    assert one != two  # another face, another model
    assert (faces.width, faces.height) == (256, 256)


async def test_pulid_needs_antelopev2(ctx: RecordingContext, folders: Folders) -> None:
    with pytest.raises(AssertionError, match="antelopev2"):
        await run(ctx, "PulidInsightFaceLoader", provider="CUDA")
    model_file(folders, "insightface/models/antelopev2/scrfd_10g_bnkps.onnx")
    (face,) = (await run(ctx, "PulidInsightFaceLoader", provider="CUDA")).values
    (pulid,) = (await run(ctx, "PulidModelLoader", pulid_file="ip-adapter_pulid_sdxl_fp16.safetensors")).values
    (eva,) = (await run(ctx, "PulidEvaClipLoader")).values
    model = Model("sd_xl_base_1.0.safetensors")
    common = {"model": model, "pulid": pulid, "eva_clip": eva, "face_analysis": face, "image": images((5, 5, 5))}
    (patched,) = (
        await run(ctx, "ApplyPulid", method="fidelity", weight=1.0, start_at=0.0, end_at=1.0, **common)
    ).values
    (unchanged,) = (
        await run(ctx, "ApplyPulid", method="fidelity", weight=0.0, start_at=0.0, end_at=1.0, **common)
    ).values
    assert patched != model and unchanged == model


def voice(seconds: float, level: int = 1000) -> Audio:
    return Audio((array.array("h", [level, -level] * int(seconds * 8000)),), 16000)


async def test_f5_tts_speaks_each_voice_chunk_for_its_length(ctx: RecordingContext) -> None:
    inputs = {"sample_text": "Hello there, this is me.", "seed": 1, "model": "F5v1", "vocoder": "auto"}
    inputs |= {"model_type": "F5TTS_v1_Base"}
    (short,) = (
        await run(
            ctx, "F5TTSAudioInputs", sample_audio=voice(2.4), speech="Hello there, this is me.", speed=1.0, **inputs
        )
    ).values
    assert short.sample_rate == 24000 and len(short.channels) == 1
    assert abs(short.frames / 24000 - 2.4) < 0.01  # the same text as the sample: the sample's length
    ctx.progress_calls.clear()
    speech = "{main} Hello there, this is me. {main} And again: hello there, this is me!"
    (long,) = (await run(ctx, "F5TTSAudioInputs", sample_audio=voice(2.4), speech=speech, speed=2.0, **inputs)).values
    # Three chunks (an empty one before the first tag is skipped), two spoken, each twice as slow.
    assert [(c.value, c.total) for c in ctx.progress_calls] == [(1, 3), (2, 3)]
    assert long.frames > 3 * short.frames
    (other,) = (
        await run(
            ctx,
            "F5TTSAudioInputs",
            sample_audio=voice(2.4, level=3000),
            speech="Hello there, this is me.",
            speed=1.0,
            **inputs,
        )
    ).values
    assert other.channels[0] != short.channels[0]  # another voice sounds different
