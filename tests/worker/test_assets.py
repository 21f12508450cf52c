"""Character packs on the worker, end to end: a fresh worker (empty asset cache) runs jobs for ava and mira on the
ComfyUI emulator, fetching each asset once from a loopback server, verifying it, placing it where ComfyUI reads
it, and reusing it; a wrong or missing file fails the job with ``asset_fetch_failed`` and is never placed."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.common import ConfigError
from handlers.contract import ErrorCode, OutputKind, ProgressEvent
from handlers.local.stack import place_model_files, upload_pack_assets
from handlers.worker import Assets, AssetSettings, WorkerConfig, WorkerRuntime
from handlers.worker._assets import asset_settings
from handlers.workflow import CharacterLora
from tests.worker._relay import (
    WORKFLOWS,
    AssetServer,
    Comfy,
    collect,
    made,
    make_models,
    pack_assets_for,
    result_of,
    runtime_for,
    serve_comfy,
    serve_pack_assets,
)
from tests.worker.conftest import make_s3_client

AVA_LORA = "ava/ava_sdxl_v1.safetensors"


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    models = make_models(root / "models")
    place_model_files(models, WORKFLOWS)  # every template's models, but no character's LoRA
    with serve_comfy(root / "data", models) as served:
        yield served


@pytest.fixture
def pack_server() -> Iterator[AssetServer]:
    with serve_pack_assets() as served:
        yield served


def history_graph(comfy: Comfy, prompt_id: str | None) -> dict[str, Any]:
    assert prompt_id is not None
    body: dict[str, Any] = httpx.get(f"{comfy.url}/history/{prompt_id}").json()
    graph: dict[str, Any] = body[prompt_id]["prompt"][2]
    return graph


def ava_job(prompt: str = "reading in a cafe") -> dict[str, Any]:
    return {
        "template": "image/sdxl-basic",
        "character": "ava",
        "params": {"prompt": prompt, "width": 64, "height": 64, "steps": 2},
        "overrides": {"KSampler.sampler_name": "euler"},
    }


def make_runtime(comfy: Comfy, server: AssetServer, moto: str, bucket: str, tmp: Path, **kw: Any) -> WorkerRuntime:
    assets = pack_assets_for(comfy, server.url, tmp / "assets")
    return runtime_for(comfy, moto, bucket, scratch=tmp / "scratch", assets=assets, **kw)


async def test_a_fresh_worker_fetches_ava_lora_once_places_it_and_reuses_it(
    comfy: Comfy, pack_server: AssetServer, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    runtime = make_runtime(comfy, pack_server, moto_endpoint, s3_bucket, tmp_path)
    try:
        events, final = await collect(runtime, {"id": "ava-1", "input": ava_job()})
        result = result_of(final)
        assert [o.kind for o in made(result)] == [OutputKind.IMAGE]
        assert (result.outputs[0].width, result.outputs[0].height) == (64, 64)
        (seed,) = result.seeds
        graph = history_graph(comfy, result.prompt_id)
        assert graph["11"]["inputs"]["string_b"] == "reading in a cafe"
        assert graph["11"]["inputs"]["string_a"] == "ava_character, freckles"  # her trigger words
        assert graph["7"]["inputs"]["text"] == "blurry, low quality, watermark, extra fingers"  # her own default
        assert graph["3"]["inputs"]["cfg"] == 6.5 and graph["3"]["inputs"]["sampler_name"] == "euler"
        assert graph["3"]["inputs"]["seed"] == seed.value
        data = pack_server.files[AVA_LORA]
        sha = hashlib.sha256(data).hexdigest()
        # Her LoRA, content-addressed in ComfyUI's models folder, verified bytes, at her strengths.
        assert graph["10"]["inputs"]["lora_name"] == f"relay-assets/{sha[:16]}/ava_sdxl_v1.safetensors"
        assert (graph["10"]["inputs"]["strength_model"], graph["10"]["inputs"]["strength_clip"]) == (0.8, 0.7)
        assert comfy.models_dir is not None
        placed = comfy.models_dir / "loras" / graph["10"]["inputs"]["lora_name"]
        assert placed.read_bytes() == data
        assert pack_server.requests[AVA_LORA] == 1
        steps = [e for e in events if isinstance(e, ProgressEvent) and e.step is not None]
        assert {e.step_max for e in steps} == {2}

        _events, final = await collect(runtime, {"id": "ava-2", "input": ava_job("on a beach")})
        assert result_of(final).outputs
        assert pack_server.requests[AVA_LORA] == 1  # reused from the cache: no second download
        assert runtime.assets.policy.leases(sha) == 0  # released when the jobs ended
    finally:
        await runtime.aclose()


async def test_concurrent_jobs_share_one_download(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    with serve_pack_assets() as server:
        runtime = make_runtime(comfy, server, moto_endpoint, s3_bucket, tmp_path)
        try:
            jobs = [collect(runtime, {"id": f"ava-c{i}", "input": ava_job(f"scene {i}")}) for i in range(3)]
            finals = [final for _events, final in await asyncio.gather(*jobs)]
            assert all(result_of(final).outputs for final in finals)
            assert server.requests[AVA_LORA] == 1
        finally:
            await runtime.aclose()


async def test_a_sha_mismatch_fails_cleanly_and_nothing_is_placed(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    with serve_pack_assets() as server:
        server.files[AVA_LORA] = server.files[AVA_LORA][:-1] + b"\x01"  # same size, other bytes
        runtime = make_runtime(comfy, server, moto_endpoint, s3_bucket, tmp_path)
        try:
            _events, final = await collect(runtime, {"id": "ava-bad", "input": ava_job()})
            assert final.error is not None and final.result is None
            assert final.error.code is ErrorCode.ASSET_FETCH_FAILED and not final.error.retryable
            assert "ava_sdxl_v1.safetensors" in final.error.message and "sha256" in final.error.message
            sha = runtime.assets.policy
            assert sha.used_bytes == 0  # not cached
            assert list((tmp_path / "assets" / "blobs").iterdir()) == []
            assert not list((tmp_path / "assets" / "partial").iterdir())
            lora = hashlib.sha256(server.files[AVA_LORA]).hexdigest()
            assert comfy.models_dir is not None
            assert not list(comfy.models_dir.glob(f"loras/relay-assets/{lora[:16]}*"))
        finally:
            await runtime.aclose()


async def test_a_missing_asset_and_a_worker_without_a_models_folder_are_clear_errors(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    with serve_pack_assets() as server:
        del server.files[AVA_LORA]
        runtime = make_runtime(comfy, server, moto_endpoint, s3_bucket, tmp_path / "a")
        try:
            _events, final = await collect(runtime, {"id": "ava-404", "input": ava_job()})
            assert final.error is not None and final.error.code is ErrorCode.ASSET_FETCH_FAILED
            assert "HTTP 404" in final.error.message and not final.error.retryable
        finally:
            await runtime.aclose()
    with serve_pack_assets() as server:
        runtime = make_runtime(comfy, server, moto_endpoint, s3_bucket, tmp_path / "b")
        runtime.assets.settings = runtime.assets.settings.__class__(
            **{**_fields(runtime.assets.settings), "models_dir": None}
        )
        try:
            _events, final = await collect(runtime, {"id": "ava-nomodels", "input": ava_job()})
            assert final.error is not None and final.error.code is ErrorCode.ASSET_FETCH_FAILED
            assert "COMFYUI_MODELS_DIR" in final.error.message
        finally:
            await runtime.aclose()


def _fields(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__slots__}


async def test_mira_voice_reaches_a_remote_comfyui_over_http(
    comfy: Comfy, pack_server: AssetServer, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    runtime = make_runtime(comfy, pack_server, moto_endpoint, s3_bucket, tmp_path, local_files=False)
    job = {"template": "audio/f5-tts", "character": "mira", "params": {"text": "Good morning."}}
    try:
        _events, final = await collect(runtime, {"id": "mira-remote", "input": job})
        result = result_of(final)
        assert [o.kind for o in made(result)] == [OutputKind.AUDIO]
        graph = history_graph(comfy, result.prompt_id)
        values = {v for node in graph.values() for v in node["inputs"].values() if isinstance(v, str)}
        assert "mira-remote/character/mira_voice.wav" in values
        uploaded = comfy.input_dir / "mira-remote" / "character" / "mira_voice.wav"
        assert uploaded.read_bytes() == pack_server.files["mira/mira_voice.wav"]  # through ComfyUI's upload route
        assert pack_server.requests["mira/mira_voice.wav"] == 1
    finally:
        await runtime.aclose()


async def test_assets_come_from_s3_as_the_local_stack_serves_them(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    s3 = make_s3_client(moto_endpoint)
    base = upload_pack_assets(s3, s3_bucket, WORKFLOWS)  # what `comfy-relay local up` does
    assert base == f"s3://{s3_bucket}/character-assets"
    settings = AssetSettings(
        cache_dir=tmp_path / "assets", budget_bytes=1 << 30, base_url=base, models_dir=comfy.models_dir
    )
    assets = Assets(settings, s3_client=s3)
    runtime = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "s", assets=assets)
    try:
        _events, final = await collect(runtime, {"id": "ava-s3", "input": ava_job()})
        graph = history_graph(comfy, result_of(final).prompt_id)
        assert graph["10"]["inputs"]["lora_name"].endswith("/ava_sdxl_v1.safetensors")
    finally:
        await runtime.aclose()


async def test_a_restarted_worker_keeps_its_verified_files_and_drops_orphaned_placements(tmp_path: Path) -> None:
    data = b"lora bytes"
    sha = hashlib.sha256(data).hexdigest()
    cache, models = tmp_path / "cache", tmp_path / "models"
    (cache / "blobs").mkdir(parents=True)
    (cache / "blobs" / sha).write_bytes(data)  # verified by an earlier process
    (cache / "partial").mkdir()
    (cache / "partial" / f"{sha}.1234").write_bytes(b"lora")  # an interrupted download
    orphan = models / "loras" / "relay-assets" / ("f" * 16)
    orphan.mkdir(parents=True)
    (orphan / "old.safetensors").write_bytes(b"evicted meanwhile")
    with serve_pack_assets({}) as server:
        settings = AssetSettings(cache_dir=cache, budget_bytes=1024, base_url=server.url, models_dir=models)
        assets = Assets(settings)
        lora = CharacterLora(file="x.safetensors", url="${RELAY_ASSET_BASE_URL}/x.safetensors", sha256=sha, size=10)
        assert (await assets.lease(lora)).read_bytes() == data
        assert sum(server.requests.values()) == 0  # nothing fetched
        assert not orphan.exists() and not (cache / "partial").exists()
        assets.release(sha)


def test_the_asset_settings_come_from_the_environment(tmp_path: Path) -> None:
    config = WorkerConfig.from_env(
        {
            "COMFYUI_MODELS_DIR": str(tmp_path / "models"),
            "RELAY_ASSET_CACHE_DIR": str(tmp_path / "cache"),
            "RELAY_ASSET_CACHE_BYTES": str(5 * 1024**3),
            "RELAY_ASSET_BASE_URL": "s3://acme-characters/packs/",
        }
    )
    settings = asset_settings(config)
    assert settings == AssetSettings(
        cache_dir=tmp_path / "cache",
        budget_bytes=5 * 1024**3,
        base_url="s3://acme-characters/packs",
        models_dir=tmp_path / "models",
    )
    assert asset_settings(WorkerConfig.from_env({"RELAY_SCRATCH_DIR": str(tmp_path)})).cache_dir == (
        tmp_path / "comfy-relay-assets"
    )
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env({"RELAY_ASSET_BASE_URL": "ftp://x/y", "RELAY_ASSET_CACHE_BYTES": "0"})
    names = sorted(p.split("=", 1)[0] for p in info.value.problems)
    assert names == ["RELAY_ASSET_BASE_URL", "RELAY_ASSET_CACHE_BYTES"]


async def test_a_replayed_character_job_fetches_none_of_her_assets(
    comfy: Comfy, pack_server: AssetServer, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    first = make_runtime(comfy, pack_server, moto_endpoint, s3_bucket, tmp_path / "first")
    try:
        result = result_of((await collect(first, {"id": "ava-replay", "input": ava_job()}))[1])
    finally:
        await first.aclose()
    assert pack_server.requests[AVA_LORA] == 1
    fresh = make_runtime(comfy, pack_server, moto_endpoint, s3_bucket, tmp_path / "fresh")  # an empty asset cache
    try:
        again = result_of((await collect(fresh, {"id": "ava-replay", "input": ava_job()}))[1])
    finally:
        await fresh.aclose()
    assert again.manifest_uri == result.manifest_uri and again.outputs == result.outputs
    assert pack_server.requests[AVA_LORA] == 1  # answered from the stored manifest: nothing fetched
