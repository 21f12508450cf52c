"""Every template of the library runs end to end through the worker, on the ComfyUI emulator with the local stack's
placeholder models and sample inputs, with its default parameters (plus sample media and the values it requires).

Only ``video/wan22-i2v`` is run smaller than its defaults (320x320, 17 frames instead of 640x640, 81 frames): at
its defaults the emulator's I_PCM H.264 file is ~50 MB, which would dominate the suite's time for no extra coverage.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.contract import OutputKind, OutputReadyEvent, ProgressEvent, QaVerdict
from handlers.local.stack import SAMPLE_DATASET, place_model_files, place_sample_inputs, sample_job
from handlers.worker import WorkerRuntime
from handlers.workflow import list_templates, load_template
from tests.worker._relay import (
    WORKFLOWS,
    AssetServer,
    Comfy,
    collect,
    made,
    pack_assets_for,
    result_of,
    runtime_for,
    serve_comfy,
)


@dataclass(frozen=True)
class Expected:
    """Outputs by kind: (count, width, height) for images and video, (count, None, None) otherwise."""

    outputs: dict[OutputKind, tuple[int, int | None, int | None]]
    #: Per-step progress a node of this class reports (sampler, training or TTS steps).
    stepping: str | None = "KSampler"
    params: dict[str, Any] | None = None


IMAGE = OutputKind.IMAGE
EXPECTED: dict[str, Expected] = {
    "image/sdxl-basic": Expected({IMAGE: (1, 1024, 1024)}),
    "ava/image/sdxl-basic": Expected({IMAGE: (1, 832, 1216)}),
    "image/flux-dev": Expected({IMAGE: (1, 1024, 1024)}, stepping="SamplerCustomAdvanced"),
    "image/z-image-turbo": Expected({IMAGE: (1, 1024, 1024)}),
    "image/qwen-image": Expected({IMAGE: (1, 1328, 1328)}),
    "image/sdxl-inpaint": Expected({IMAGE: (1, 512, 512)}),
    "image/sdxl-outpaint": Expected({IMAGE: (1, 1024, 512)}),  # 512 + 256 on the left and on the right
    "image/sdxl-faceid": Expected({IMAGE: (1, 896, 1152)}),
    "image/sdxl-pulid": Expected({IMAGE: (1, 896, 1152)}),
    "image/flux-identity": Expected({IMAGE: (1, 896, 1152)}, stepping="SamplerCustomAdvanced"),
    "image/controlnet-pose": Expected({IMAGE: (1, 832, 1216)}),
    # The picture and the detected pose map (the 512x512 sample photo's short side scaled to 1024).
    "image/controlnet-pose-photo": Expected({IMAGE: (2, None, None)}),
    # The sheet (four 832-wide poses and three 16-pixel gaps) and the four poses on their own.
    "image/character-sheet": Expected({IMAGE: (5, None, 1216)}),
    "video/wan22-i2v": Expected(
        {OutputKind.VIDEO: (1, 320, 320)},
        stepping="KSamplerAdvanced",
        params={"width": 320, "height": 320, "length": 17},
    ),
    "audio/f5-tts": Expected({OutputKind.AUDIO: (1, None, None)}, stepping="F5TTSAudioInputs"),
    # The sample image and the loss curve (840x520, a temp file returned as a result); the LoRA, which no ComfyUI
    # report names, collected by the worker as kind model.
    "train/lora-sdxl": Expected({IMAGE: (2, None, None), OutputKind.MODEL: (1, None, None)}, stepping="TrainLoraNode"),
    "image/blur": Expected({IMAGE: (1, 512, 512)}, stepping=None),
    "image/solid-color": Expected({IMAGE: (1, 512, 512)}, stepping=None),
}


def library() -> list[str]:
    return [f"{character}/{name}" if character else name for character, name in list_templates(WORKFLOWS)]


def test_every_template_has_an_expectation() -> None:
    assert sorted(library()) == sorted(EXPECTED)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("library")
    models = root / "models"
    place_model_files(models, WORKFLOWS)
    place_sample_inputs(root / "data" / "input", WORKFLOWS)
    with serve_comfy(root / "data", models) as served:
        yield served


@pytest.fixture
async def runtime(
    comfy: Comfy, pack_server: AssetServer, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> AsyncIterator[WorkerRuntime]:
    assets = pack_assets_for(comfy, pack_server.url, tmp_path / "assets")
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "scratch", assets=assets)
    yield rt
    await rt.aclose()


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_template_runs_end_to_end(name: str, runtime: WorkerRuntime, comfy: Comfy) -> None:
    character, _, template_name = name.partition("/") if name.count("/") == 2 else ("", "", name)
    template = load_template(WORKFLOWS, template_name, character=character or None)
    expected = EXPECTED[name]
    job = sample_job(template)
    job["params"].update(expected.params or {})
    json.dumps(job)  # a job is plain JSON, as a caller would send it

    events, final = await collect(runtime, {"id": f"lib-{name.replace('/', '-')}", "input": job})
    result = result_of(final)

    by_kind: dict[OutputKind, list[Any]] = {}
    for output in made(result):
        by_kind.setdefault(output.kind, []).append(output)
    assert {kind: len(items) for kind, items in by_kind.items()} == {k: v[0] for k, v in expected.outputs.items()}
    for kind, (_count, width, height) in expected.outputs.items():
        for output in by_kind[kind]:
            assert output.bytes > 0 and output.s3_uri is not None
            if width is not None:
                assert output.width == width, output
            if height is not None:
                assert output.height == height, output
    ready = [e for e in events if isinstance(e, OutputReadyEvent)]
    assert len(ready) == len(result.outputs)
    # Every template's outputs pass the automated checks (size as asked, not blank, not frozen, plausible speech),
    # and every image, video and audio output has its preview beside it.
    assert result.qa is not None and result.qa.verdict is not QaVerdict.FAIL, result.qa
    for output in made(result):
        if output.kind in (OutputKind.IMAGE, OutputKind.ANIMATED, OutputKind.VIDEO, OutputKind.AUDIO):
            assert output.qa is not None and output.qa.verdict is not QaVerdict.FAIL, (output.filename, output.qa)
            assert any(o.derived_from == output.sha256 for o in result.outputs), output.filename
    steps = [e for e in events if isinstance(e, ProgressEvent) and e.step is not None]
    if expected.stepping is not None:
        graph = {**template.graph}
        stepping_nodes = {node_id for node_id, node in graph.items() if node["class_type"] == expected.stepping}
        assert steps and {e.node_id for e in steps} & stepping_nodes
    assert result.seeds or name in ("image/blur", "image/solid-color")
    # Nothing is left in ComfyUI's output and temp folders: outputs, previews such as the loss graph, and the
    # trained LoRA that SaveLoRANode wrote under the job's own prefix.
    left = [p for folder in ("output", "temp") for p in (comfy.data_dir / folder).rglob("*") if p.is_file()]
    assert left == []
    if name == "train/lora-sdxl":
        assert job["params"]["dataset"] == SAMPLE_DATASET
        (model,) = by_kind[OutputKind.MODEL]
        assert model.filename == "character_lora_1500_steps_00001_.safetensors" and model.sha256 is not None


async def test_long_speech_is_generated_chunk_by_chunk_into_one_audio(runtime: WorkerRuntime, comfy: Comfy) -> None:
    template = load_template(WORKFLOWS, "audio/f5-tts")
    job = sample_job(template)
    short = job["params"]["voice_transcript"]
    job["params"]["text"] = " ".join([short] * 12)  # 12 x 62 characters: four chunks of at most 200
    events, final = await collect(runtime, {"id": "lib-long-speech", "input": job})
    (audio,) = made(result_of(final))
    assert audio.kind is OutputKind.AUDIO and audio.mime == "audio/flac"
    steps = [(e.step, e.step_max) for e in events if isinstance(e, ProgressEvent) and e.step is not None]
    assert steps[-1] == (4, 4) and {m for _, m in steps} == {4}
    # Each chunk lasts as long as the 3-second sample does for its transcript, times its length.
    assert audio.duration_s is not None and 35 < audio.duration_s < 37


@pytest.mark.parametrize(("fmt", "mime"), [("wav", "audio/wav"), ("flac", "audio/flac")])
async def test_speech_is_delivered_as_wav_or_flac(fmt: str, mime: str, runtime: WorkerRuntime, comfy: Comfy) -> None:
    job = sample_job(load_template(WORKFLOWS, "audio/f5-tts"))
    job["output"] = {"format": fmt}
    _events, final = await collect(runtime, {"id": f"lib-speech-{fmt}", "input": job})
    (audio,) = made(result_of(final))
    # ComfyUI wrote FLAC; the stored object is converted, and its name says so.
    assert audio.filename == f"tts_00001_.{fmt}"
    assert audio.mime == mime and audio.s3_uri is not None and audio.s3_uri.endswith(f".{fmt}")
    assert audio.duration_s is not None and audio.duration_s > 1


@pytest.mark.parametrize(
    ("name", "kind", "count"),
    [
        ("audio/f5-tts", OutputKind.AUDIO, 1),
        ("image/character-sheet", IMAGE, 5),
        ("image/flux-identity", IMAGE, 1),
        ("train/lora-sdxl", IMAGE, 2),
    ],
)
async def test_a_character_supplies_its_voice_references_and_trigger_word(
    name: str, kind: OutputKind, count: int, runtime: WorkerRuntime, comfy: Comfy
) -> None:
    template = load_template(WORKFLOWS, name, character="mira")
    job = sample_job(template)
    assert "media" not in job  # mira's voice sample and reference photos come from her pack
    job_id = f"lib-mira-{name.replace('/', '-')}"
    _events, final = await collect(runtime, {"id": job_id, "input": job})
    result = result_of(final)
    assert [o.kind for o in made(result) if o.kind is not OutputKind.MODEL] == [kind] * count
    graph = history_prompt(comfy, result.prompt_id)
    values = {v for node in graph.values() for v in node["inputs"].values() if isinstance(v, str)}
    if name == "audio/f5-tts":
        transcript = "Hi, I'm Mira. I read the news every morning, and I love a good story."
        assert {f"{job_id}/character/mira_voice.wav", transcript} <= values  # provisioned into the job's inputs
    elif name in ("image/character-sheet", "image/flux-identity"):
        assert {f"{job_id}/character/mira_ref_front.png", f"{job_id}/character/mira_ref_side.png"} <= values
    else:
        assert "mira_character" in values
        assert [o.kind for o in result.outputs].count(OutputKind.MODEL) == 1


def history_prompt(comfy: Comfy, prompt_id: str | None) -> dict[str, Any]:
    body = httpx.get(f"{comfy.url}/history/{prompt_id}").json()
    graph: dict[str, Any] = body[prompt_id]["prompt"][2]
    return graph


async def test_a_pose_sheet_with_an_identity_composes_controlnet_and_faceid(
    runtime: WorkerRuntime, comfy: Comfy
) -> None:
    """A character turnaround: one wide skeleton sheet through image/controlnet-pose, the face from references
    through the ``identity`` edit (IPAdapter FaceID between the checkpoint and the sampler)."""
    job = sample_job(load_template(WORKFLOWS, "image/controlnet-pose"))
    job["params"].update({"width": 1536, "height": 768, "identity": "faceid", "references": ["face"]})
    portrait = sample_job(load_template(WORKFLOWS, "image/sdxl-faceid"))["media"][0]  # a sample face photo
    job["media"].append({**portrait, "name": "face"})
    _events, final = await collect(runtime, {"id": "lib-pose-sheet", "input": job})
    (image,) = made(result_of(final))
    assert (image.width, image.height) == (1536, 768)
    graph = history_prompt(comfy, result_of(final).prompt_id)
    classes = {node["class_type"] for node in graph.values()}
    assert {"ControlNetApplyAdvanced", "IPAdapterFaceID"} <= classes
