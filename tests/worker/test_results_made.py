"""Results people can use, through the worker core against the ComfyUI emulator and moto's S3: keys the caller
names (``output.name``, ``labels``), the stored format in ``filename``, PNG metadata kept or stripped, prompt x seed
variations labelled, and the provenance of every job in its result and manifest."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from handlers.contract import ErrorCode, Variation
from handlers.image import load_lock
from handlers.worker import WorkerRuntime
from tests.conftest import REPO
from tests.worker._relay import (
    Comfy,
    collect,
    made,
    make_models,
    mixed_graph,
    result_of,
    runtime_for,
    serve_comfy,
    ui_image_graph,
)
from tests.worker.conftest import make_s3_client

LOCK = REPO / "worker_image" / "lock.json"


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    models = make_models(root / "models")
    (models / "loras").mkdir(parents=True, exist_ok=True)
    (models / "loras" / "style_v1.safetensors").write_bytes(b"")  # any LoRA file will do
    with serve_comfy(root / "data", models) as served:
        yield served


@pytest.fixture
async def runtime(comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path) -> AsyncIterator[WorkerRuntime]:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "scratch", lock_file=LOCK)
    yield rt
    await rt.aclose()


def stored(moto_endpoint: str, bucket: str, uri: str | None) -> bytes:
    assert uri is not None and uri.startswith(f"s3://{bucket}/")
    key = uri.removeprefix(f"s3://{bucket}/")
    body: bytes = make_s3_client(moto_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def keys(moto_endpoint: str, bucket: str) -> list[str]:
    listing = make_s3_client(moto_endpoint).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def png_text(data: bytes) -> dict[str, Any]:
    with Image.open(io.BytesIO(data)) as image:
        return dict(getattr(image, "text", {}))


def sdxl(**params: Any) -> dict[str, Any]:
    return {"template": "image/sdxl-basic", "params": {"width": 64, "height": 64, "steps": 1, **params}}


async def test_output_name_puts_the_image_where_the_caller_expects_it(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    job = {
        **sdxl(prompt="a lighthouse", seed=5),
        "labels": {"project": "p1", "sentence": "42"},
        "output": {"name": "projects/{project}/images/{sentence}"},
    }
    _events, final = await collect(runtime, {"id": "named-1", "input": job})
    (image,) = made(result_of(final))
    assert image.s3_uri == f"s3://{s3_bucket}/jobs/projects/p1/images/42.png"  # under the worker's prefix
    assert image.filename == "42.png"
    data = stored(moto_endpoint, s3_bucket, image.s3_uri)
    assert hashlib.sha256(data).hexdigest() == image.sha256
    assert "jobs/named-1/manifest.json" in keys(moto_endpoint, s3_bucket)


async def test_a_converted_image_is_named_for_its_stored_format(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    plain = {**sdxl(prompt="a lighthouse", seed=5), "output": {"format": "webp"}}
    _events, final = await collect(runtime, {"id": "webp-1", "input": plain})
    (image,) = made(result_of(final))
    assert image.filename is not None and image.filename.endswith(".webp") and image.mime == "image/webp"
    assert image.s3_uri is not None and image.s3_uri.endswith("/" + image.filename)
    named = {**plain, "output": {"format": "jpeg", "name": "{job_id}/{seed}"}}
    _events, final = await collect(runtime, {"id": "jpeg-1", "input": named})
    (image,) = made(result_of(final))
    assert (image.filename, image.mime) == ("5.jpg", "image/jpeg")
    with Image.open(io.BytesIO(stored(moto_endpoint, s3_bucket, image.s3_uri))) as decoded:
        assert decoded.format == "JPEG"


async def test_a_name_that_cannot_work_is_refused_before_anything_runs(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    # Several output nodes, one name: certain to collide. And a field nothing fills.
    job = {"workflow": mixed_graph(), "labels": {"project": "p1"}, "output": {"name": "{project}/{missing}"}}
    _events, final = await collect(runtime, {"id": "clash-1", "input": job})
    assert final.error is not None and final.error.code is ErrorCode.INVALID_INPUT
    messages = [p.message for p in final.error.problems]
    assert {p.path for p in final.error.problems} == {"input.output.name"}
    assert any("{missing}" in m for m in messages) and any("add {node}" in m for m in messages)
    assert keys(moto_endpoint, s3_bucket) == []
    # Traversal never gets past the contract.
    bad = {**sdxl(prompt="x"), "output": {"name": "../{job_id}"}}
    _events, final = await collect(runtime, {"id": "clash-2", "input": bad})
    assert final.error is not None and final.error.code is ErrorCode.INVALID_INPUT
    assert [p.path for p in final.error.problems] == ["input.output.name"]


async def test_pngs_keep_the_workflow_unless_asked_to_strip_it(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    _events, final = await collect(runtime, {"id": "meta-1", "input": sdxl(prompt="a lighthouse", seed=5)})
    (kept,) = made(result_of(final))
    kept_bytes = stored(moto_endpoint, s3_bucket, kept.s3_uri)
    prompt = json.loads(png_text(kept_bytes)["prompt"])  # as ComfyUI's SaveImage writes it: the API graph
    assert prompt["3"]["inputs"]["seed"] == 5
    job = {**sdxl(prompt="a lighthouse", seed=5), "output": {"strip_metadata": True}}
    _events, final = await collect(runtime, {"id": "meta-2", "input": job})
    (stripped,) = made(result_of(final))
    data = stored(moto_endpoint, s3_bucket, stripped.s3_uri)
    assert png_text(data) == {}
    assert hashlib.sha256(data).hexdigest() == stripped.sha256 and len(data) == stripped.bytes
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(kept_bytes)) as b:
        assert a.tobytes() == b.tobytes()  # same pixels: only the text chunks went


async def test_a_ui_workflow_is_embedded_as_comfyuis_frontend_would(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    ui = ui_image_graph()
    _events, final = await collect(runtime, {"id": "ui-meta", "input": {"workflow": ui}})
    result = result_of(final)
    (image,) = made(result)
    text = png_text(stored(moto_endpoint, s3_bucket, image.s3_uri))
    assert json.loads(text["workflow"]) == ui and "prompt" in text
    assert result.provenance is not None and result.provenance.workflow == "ui"


async def test_prompts_times_seeds_run_as_one_prompt_each_output_labelled(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    job = {
        **sdxl(prompts=["a fox", "a cat"], seeds=[1, 2]),
        "output": {"name": "batch/{variation}-{seed}-{prompt}"},
    }
    _events, final = await collect(runtime, {"id": "vary-1", "input": job})
    result = result_of(final)
    assert len(made(result)) == 4 and len({o.sha256 for o in made(result)}) == 4
    labels = sorted((o.variation for o in made(result)), key=lambda v: v.index if v else -1)
    assert labels == [
        Variation(index=0, prompt="a fox", seed=1),
        Variation(index=1, prompt="a fox", seed=2),
        Variation(index=2, prompt="a cat", seed=1),
        Variation(index=3, prompt="a cat", seed=2),
    ]
    assert sorted(o.filename or "" for o in made(result)) == [
        "0-1-a-fox.png",
        "1-2-a-fox.png",
        "2-1-a-cat.png",
        "3-2-a-cat.png",
    ]
    assert result.provenance is not None and result.provenance.edits["prompts"] == ["a fox", "a cat"]


async def test_the_result_and_manifest_say_how_it_was_made(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    job = {
        **sdxl(prompt="a lighthouse", seed=7, loras=[{"name": "style_v1.safetensors", "strength": 0.6}]),
        "labels": {"project": "p1"},
    }
    _events, final = await collect(runtime, {"id": "made-1", "input": job})
    result = result_of(final)
    made = result.provenance
    assert made is not None
    assert (made.template, made.character, made.workflow) == ("image/sdxl-basic", None, "template")
    assert made.params["prompt"] == "a lighthouse" and made.params["seed"] == 7
    assert made.params["negative"] == "blurry, low quality, watermark"  # the template's default, as bound
    assert made.edits == {"loras": [{"name": "style_v1.safetensors", "strength": 0.6}]}
    assert made.labels == {"project": "p1"}
    assert [(lora.name, lora.strength_model) for lora in made.loras] == [("style_v1.safetensors", 0.6)]
    lock = load_lock(LOCK)
    checkpoint = next(m for m in made.models if m.file == "sd_xl_base_1.0.safetensors")
    assert checkpoint.sha256 == next(m.sha256 for m in lock.models if m.file == checkpoint.file)
    assert checkpoint.folder == "checkpoints"
    assert made.comfyui.version and made.comfyui.commit == lock.comfyui.commit
    assert made.relay_version and made.graph_sha256 and made.lock == str(LOCK)
    assert result.timings.total_ms is not None
    manifest = json.loads(stored(moto_endpoint, s3_bucket, result.manifest_uri))
    assert manifest["provenance"] == made.model_dump(mode="json")


async def test_audio_is_delivered_in_the_asked_format_and_named_for_it(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    job = {"workflow": mixed_graph(), "output": {"format": "wav", "name": "clips/{node}_{index}"}}
    _events, final = await collect(runtime, {"id": "wav-1", "input": job})
    outputs = made(result_of(final))
    audio = next(o for o in outputs if (o.mime or "").startswith("audio/"))
    assert (audio.mime, audio.filename) == ("audio/wav", f"{audio.node_id}_0.wav")
    assert stored(moto_endpoint, s3_bucket, audio.s3_uri)[:4] == b"RIFF"
    # Images are not audio: they keep ComfyUI's PNG, and the name says so.
    image = next(o for o in outputs if o.mime == "image/png")
    assert image.filename == f"{image.node_id}_0.png"


async def test_stripping_also_clears_flac_audio(runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str) -> None:
    _events, final = await collect(runtime, {"id": "flac-kept", "input": {"workflow": mixed_graph()}})
    kept = next(o for o in result_of(final).outputs if o.mime == "audio/flac")
    assert b"prompt=" in stored(moto_endpoint, s3_bucket, kept.s3_uri)  # SaveAudio's Vorbis comment
    job = {"workflow": mixed_graph(), "output": {"strip_metadata": True}}
    _events, final = await collect(runtime, {"id": "flac-stripped", "input": job})
    outputs = made(result_of(final))
    audio = next(o for o in outputs if o.mime == "audio/flac")
    data = stored(moto_endpoint, s3_bucket, audio.s3_uri)
    assert b"prompt=" not in data and hashlib.sha256(data).hexdigest() == audio.sha256
    assert audio.duration_s == kept.duration_s
    for image in (o for o in outputs if o.mime == "image/png"):
        assert png_text(stored(moto_endpoint, s3_bucket, image.s3_uri)) == {}
