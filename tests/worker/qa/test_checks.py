"""The QA checks on real files: black, uniform, blurred, duplicated, frozen and silent outputs are caught; good ones
pass; what cannot be judged says ``skipped``."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image, ImageFilter

from handlers.contract import OutputKind, OutputRole, PreviewOptions, QaThresholds, QaVerdict, SeedUsed
from handlers.local.comfyui._nodes._h264 import encode_h264
from handlers.local.comfyui._nodes._mp4 import mux_mp4
from handlers.local.comfyui._nodes._render import picture
from handlers.worker.qa import (
    Expected,
    check_audio_file,
    check_file,
    check_image_file,
    check_video_file,
    decoder_available,
    expected_for,
    laplacian_variance,
    make_previews,
    reseeded,
    with_duplicates,
)
from handlers.workflow import BoundWorkflow

TH = QaThresholds()


def _verdicts(qa: object) -> dict[str, QaVerdict]:
    return {c.name: c.verdict for c in qa.checks}  # type: ignore[attr-defined]


def save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def test_a_black_png_fails_the_black_and_uniform_checks(tmp_path: Path) -> None:
    qa = check_image_file(save(Image.new("RGB", (64, 64)), tmp_path / "black.png"), None, TH)
    assert qa.verdict is QaVerdict.FAIL
    assert _verdicts(qa)["black"] is QaVerdict.FAIL and _verdicts(qa)["uniform"] is QaVerdict.FAIL
    assert set(qa.failed()) == {"black", "uniform"}


def test_a_flat_grey_image_is_uniform_but_not_black(tmp_path: Path) -> None:
    qa = check_image_file(save(Image.new("RGB", (64, 64), (128, 128, 128)), tmp_path / "grey.png"), None, TH)
    assert _verdicts(qa)["uniform"] is QaVerdict.FAIL and _verdicts(qa)["black"] is QaVerdict.PASS


def test_a_generated_picture_passes_and_its_size_is_held_to_the_asked_one(tmp_path: Path) -> None:
    path = save(picture(7, 96, 64), tmp_path / "ok.png")
    qa = check_image_file(path, Expected(width=96, height=64), TH)
    assert qa.verdict is QaVerdict.PASS, qa
    assert qa.phash is not None and len(qa.phash) == 16
    wrong = check_image_file(path, Expected(width=64, height=64), TH)
    assert _verdicts(wrong)["size"] is QaVerdict.FAIL and _verdicts(wrong)["aspect"] is QaVerdict.FAIL
    unknown = check_image_file(path, None, TH)
    assert _verdicts(unknown)["size"] is QaVerdict.SKIPPED


def test_a_sharp_image_scores_higher_than_its_blurred_copy(tmp_path: Path) -> None:
    sharp = picture(3, 256, 256)
    blurred = sharp.filter(ImageFilter.GaussianBlur(4))
    gray = lambda im: np.asarray(im.convert("L"), dtype=np.float32)  # noqa: E731
    assert laplacian_variance(gray(sharp)) > 5 * laplacian_variance(gray(blurred))
    strict = TH.model_copy(update={"min_sharpness": laplacian_variance(gray(blurred)) * 2})
    assert _verdicts(check_image_file(save(blurred, tmp_path / "b.png"), None, strict))["sharpness"] is QaVerdict.FAIL
    assert _verdicts(check_image_file(save(sharp, tmp_path / "s.png"), None, strict))["sharpness"] is QaVerdict.PASS


def test_a_file_that_is_not_an_image_fails_to_decode(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    qa = check_image_file(path, None, TH)
    assert qa.verdict is QaVerdict.FAIL and qa.failed() == ["decodes"]


def test_near_duplicates_in_a_batch_are_found_and_distinct_images_are_not(tmp_path: Path) -> None:
    a = picture(1, 128, 128)
    results = [
        check_image_file(save(a, tmp_path / "a.png"), None, TH),
        check_image_file(save(picture(2, 128, 128), tmp_path / "b.png"), None, TH),
        check_image_file(save(a.filter(ImageFilter.GaussianBlur(1)), tmp_path / "a2.png"), None, TH),
    ]
    marked = with_duplicates(results, TH.duplicate_distance)
    verdicts = [_verdicts(m)["duplicate"] for m in marked]
    assert verdicts == [QaVerdict.PASS, QaVerdict.PASS, QaVerdict.FAIL]
    assert marked[2] is not None and marked[2].verdict is QaVerdict.FAIL
    # An upscaled copy (another size) is not a duplicate of its source: it is meant to look like it.
    upscaled = with_duplicates(results[:1] + results[2:], TH.duplicate_distance, [(128, 128), (256, 256)])
    assert [_verdicts(m)["duplicate"] for m in upscaled] == [QaVerdict.PASS, QaVerdict.PASS]


def _mp4(path: Path, frames: list[Image.Image], fps: int = 8) -> Path:
    path.write_bytes(mux_mp4(encode_h264(tuple(frames)), fps=fps))
    return path


needs_av = pytest.mark.skipif(not decoder_available(), reason="PyAV is not installed")


@needs_av
def test_a_frozen_mp4_is_detected_and_a_moving_one_passes(tmp_path: Path) -> None:
    still = picture(5, 64, 64)
    frozen = check_video_file(_mp4(tmp_path / "frozen.mp4", [still] * 9), Expected(width=64, height=64), TH)
    assert _verdicts(frozen)["frozen"] is QaVerdict.FAIL and frozen.verdict is QaVerdict.FAIL
    canvas = picture(5, 96, 96)
    moving = [canvas.crop((x * 4, x * 4, x * 4 + 64, x * 4 + 64)) for x in range(9)]
    ok = check_video_file(_mp4(tmp_path / "moving.mp4", moving), Expected(width=64, height=64, frames=9, fps=8), TH)
    assert ok.verdict is QaVerdict.PASS, ok
    assert {"frames", "fps", "duration", "first_frame.black", "last_frame.uniform"} <= set(_verdicts(ok))
    short = check_video_file(tmp_path / "moving.mp4", Expected(frames=33, fps=8), TH)
    assert _verdicts(short)["frames"] is QaVerdict.FAIL and _verdicts(short)["duration"] is QaVerdict.FAIL


@needs_av
def test_a_video_whose_last_frame_is_black_fails_on_it(tmp_path: Path) -> None:
    canvas = picture(9, 96, 96)
    frames = [canvas.crop((x * 4, 0, x * 4 + 64, 64)) for x in range(8)] + [Image.new("RGB", (64, 64))]
    qa = check_video_file(_mp4(tmp_path / "v.mp4", frames), None, TH)
    assert "last_frame.black" in qa.failed() and "first_frame.black" not in qa.failed()


def _wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    soundfile.write(str(path), samples, rate)
    return path


def test_silent_audio_fails_and_speech_length_is_held_to_the_text(tmp_path: Path) -> None:
    rate = 16000
    silent = check_audio_file(_wav(tmp_path / "s.wav", np.zeros(rate)), None, TH)
    assert _verdicts(silent)["silence"] is QaVerdict.FAIL
    t = np.arange(rate * 2) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    path = _wav(tmp_path / "tone.flac", tone)
    assert check_audio_file(path, Expected(text="four words said here"), TH).verdict is QaVerdict.PASS
    too_short = check_audio_file(path, Expected(text=" ".join(["word"] * 40)), TH)
    assert too_short.failed() == ["duration"]
    assert _verdicts(check_audio_file(path, None, TH))["duration"] is QaVerdict.SKIPPED


def test_clipped_audio_warns(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    qa = check_audio_file(_wav(tmp_path / "c.wav", np.clip(3 * np.sin(2 * np.pi * 100 * t), -1, 1)), None, TH)
    assert _verdicts(qa)["clipping"] is QaVerdict.WARN and qa.verdict is QaVerdict.WARN


def test_kinds_without_checks_get_none(tmp_path: Path) -> None:
    (tmp_path / "x.latent").write_bytes(b"x")
    assert check_file(tmp_path / "x.latent", OutputKind.LATENT, None, TH) is None


def test_expected_size_comes_from_the_latent_behind_the_save_node() -> None:
    graph = {
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216, "batch_size": 2}},
        "3": {"class_type": "KSampler", "inputs": {"latent_image": ["5", 0], "seed": 1}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
        "10": {"class_type": "ImageScaleBy", "inputs": {"image": ["8", 0], "scale_by": 2.0}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0]}},
    }
    assert expected_for(graph, "9") == Expected(width=832, height=1216, batch=2)
    assert expected_for(graph, "11") == Expected()  # an upscaler in between: the size is not known


def test_expected_video_and_speech_from_the_library_graphs() -> None:
    video = {
        "10": {"class_type": "WanImageToVideo", "inputs": {"width": 640, "height": 480, "length": 33}},
        "12": {"class_type": "KSamplerAdvanced", "inputs": {"latent_image": ["10", 2]}},
        "13": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0]}},
        "14": {"class_type": "CreateVideo", "inputs": {"images": ["13", 0], "fps": 16.0}},
        "15": {"class_type": "SaveVideo", "inputs": {"video": ["14", 0]}},
    }
    assert expected_for(video, "15") == Expected(width=640, height=480, frames=33, fps=16.0)
    tts = {
        "2": {"class_type": "F5TTSAudioInputs", "inputs": {"speech": "Say this now."}},
        "3": {"class_type": "SaveAudio", "inputs": {"audio": ["2", 0]}},
    }
    assert expected_for(tts, "3").text == "Say this now."


def test_previews_are_small_webp_files_linked_by_role(tmp_path: Path) -> None:
    source = save(picture(4, 1024, 512), tmp_path / "big.png")
    (made,) = make_previews(source, OutputKind.IMAGE, PreviewOptions(), tmp_path)
    assert made.role is OutputRole.THUMBNAIL
    with Image.open(made.path) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (256, 128)
    audio = _wav(tmp_path / "a.wav", 0.5 * np.sin(np.arange(8000) / 10))
    (wave,) = make_previews(audio, OutputKind.AUDIO, PreviewOptions(), tmp_path)
    with Image.open(wave.path) as image:
        assert wave.role is OutputRole.WAVEFORM and image.format == "WEBP"


@needs_av
def test_a_video_gets_a_poster_and_an_animated_preview(tmp_path: Path) -> None:
    canvas = picture(5, 200, 200)
    frames = [canvas.crop((x * 4, x * 4, x * 4 + 128, x * 4 + 96)) for x in range(24)]
    made = make_previews(_mp4(tmp_path / "v.mp4", frames), OutputKind.VIDEO, PreviewOptions(long_side=64), tmp_path)
    by_role = {m.role: m.path for m in made}
    with Image.open(by_role[OutputRole.POSTER]) as poster:
        assert poster.size == (64, 48)
    with Image.open(by_role[OutputRole.PREVIEW]) as preview:
        assert getattr(preview, "n_frames", 1) > 1 and max(preview.size) == 32


def test_a_retry_gets_new_seeds_and_a_graph_without_seeds_cannot_retry() -> None:
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}
    bound = BoundWorkflow(graph=graph, seeds=[SeedUsed(node_id="3", input="seed", value=1)])
    again = reseeded(bound, random.Random(4))
    assert again is not None and again.seeds[0].value == again.graph["3"]["inputs"]["seed"] != 1
    assert graph["3"]["inputs"]["seed"] == 1  # the original is untouched
    assert reseeded(BoundWorkflow(graph=graph)) is None


def test_an_animated_webp_is_checked_like_a_video(tmp_path: Path) -> None:
    still = picture(6, 48, 48)
    frames = []
    for n in range(6):  # one pixel differs from frame to frame (identical frames would be merged into one)
        frame = still.copy()
        frame.putpixel((n, 0), (255, 255, 255))
        frames.append(frame)
    path = tmp_path / "frozen.webp"
    frames[0].save(path, format="WEBP", save_all=True, append_images=frames[1:], duration=125, lossless=True)
    qa = check_file(path, OutputKind.ANIMATED, Expected(width=48, height=48, fps=8), TH)
    assert qa is not None and "frozen" in qa.failed()
    assert _verdicts(qa)["fps"] is QaVerdict.PASS and _verdicts(qa)["size"] is QaVerdict.PASS


def test_without_a_video_decoder_the_checks_say_skipped_not_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.worker.qa import _video

    monkeypatch.setattr(_video, "_av", lambda: None)
    path = tmp_path / "v.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom")
    qa = check_video_file(path, None, TH)
    assert qa.verdict is QaVerdict.SKIPPED and "PyAV" in (qa.checks[0].message or "")
    assert make_previews(path, OutputKind.VIDEO, PreviewOptions(), tmp_path) == []


def test_cjk_text_counts_a_character_as_a_word() -> None:
    from handlers.worker.qa._audio import spoken_units

    assert spoken_units("Hello there, friend") == 3
    assert spoken_units("你好世界") == 4 and spoken_units("say 你好") == 3
