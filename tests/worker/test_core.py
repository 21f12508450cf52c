"""The core in-process against real servers on 127.0.0.1: the ComfyUI emulator (one per module, ComfyUI's folders
shared with the worker) and moto's S3. Each test gets its own bucket and its own runtime (one event loop each)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from handlers.contract import (
    ErrorCode,
    OutputKind,
    OutputReadyEvent,
    ProgressEvent,
    ProgressWebhookPayload,
    verify_webhook,
)
from handlers.worker import S3OutputStore, WorkerRuntime
from handlers.worker.comfy import prompt_id_for
from handlers.workflow import BoundWorkflow, prepare_run
from tests.worker._relay import (
    Comfy,
    collect,
    load_image_graph,
    made,
    make_models,
    mixed_graph,
    result_of,
    runtime_for,
    sampler_graph,
    serve_comfy,
    serve_receiver,
    ui_image_graph,
)
from tests.worker.conftest import FaultProxy, make_s3_client


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    with serve_comfy(root / "data", make_models(root / "models")) as served:
        yield served


@pytest.fixture(autouse=True)
def _clean_faults(comfy: Comfy) -> Iterator[None]:
    yield
    httpx.delete(comfy.url + "/_emulator/faults")


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def faults(comfy: Comfy, **settings: Any) -> None:
    httpx.post(comfy.url + "/_emulator/faults", json=settings).raise_for_status()


def history(comfy: Comfy, prompt_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{comfy.url}/history/{prompt_id}").json()
    entry: dict[str, Any] = body.get(prompt_id, {})
    return entry


@pytest.fixture
async def runtime(comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path) -> AsyncIterator[WorkerRuntime]:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "scratch")
    yield rt
    await rt.aclose()


def s3_object(moto_endpoint: str, bucket: str, key: str) -> bytes:
    body: bytes = make_s3_client(moto_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def s3_keys(moto_endpoint: str, bucket: str) -> list[str]:
    listing = make_s3_client(moto_endpoint).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def leftovers(comfy: Comfy) -> list[str]:
    """Files the worker left in ComfyUI's folders."""
    return sorted(
        str(p.relative_to(comfy.data_dir))
        for folder in ("input", "output", "temp")
        if (comfy.data_dir / folder).exists()
        for p in (comfy.data_dir / folder).rglob("*")
    )


# ------------------------------------------------------------------------------------------------------ success


async def test_outputs_of_four_kinds_are_stored_described_and_removed_locally(
    runtime: WorkerRuntime, comfy: Comfy, moto_endpoint: str, s3_bucket: str
) -> None:
    events, final = await collect(runtime, {"id": "mixed-1", "input": {"workflow": mixed_graph()}})
    result = result_of(final)
    by_kind = {o.kind: o for o in made(result)}
    assert set(by_kind) == {OutputKind.IMAGE, OutputKind.ANIMATED, OutputKind.AUDIO, OutputKind.TEXT}
    assert by_kind[OutputKind.TEXT].text == "hello from the relay" and by_kind[OutputKind.TEXT].node_title == "Caption"
    image = by_kind[OutputKind.IMAGE]
    assert (image.width, image.height, image.mime, image.node_title) == (64, 48, "image/png", "Still")
    assert by_kind[OutputKind.AUDIO].mime == "audio/flac" and by_kind[OutputKind.AUDIO].duration_s == 0.25
    for item in (image, by_kind[OutputKind.ANIMATED], by_kind[OutputKind.AUDIO]):
        assert item.s3_uri is not None and item.url is not None
        key = item.s3_uri.removeprefix(f"s3://{s3_bucket}/")
        assert key.startswith(f"jobs/mixed-1/{item.node_id}/")
        data = s3_object(moto_endpoint, s3_bucket, key)
        assert hashlib.sha256(data).hexdigest() == item.sha256 and len(data) == item.bytes
        assert httpx.get(item.url).content == data  # the presigned URL serves the same bytes
    manifest = json.loads(s3_object(moto_endpoint, s3_bucket, "jobs/mixed-1/manifest.json"))
    assert (
        manifest["outputs"] == json.loads(result.model_copy(update={"manifest_uri": None}).model_dump_json())["outputs"]
    )
    assert result.manifest_uri == f"s3://{s3_bucket}/jobs/mixed-1/manifest.json"
    assert result.prompt_id == prompt_id_for("mixed-1")
    assert result.timings.total_ms is not None and result.timings.execution_ms is not None
    assert set(result.timings.nodes_ms) <= set(mixed_graph()) and result.timings.nodes_ms
    # Outputs were announced as they were stored, and progress never went backwards and reached 100.
    ready = [e for e in events if isinstance(e, OutputReadyEvent)]
    assert sorted(e.output.node_id for e in ready) == sorted(o.node_id for o in result.outputs)
    percents = [e.percent for e in events if isinstance(e, ProgressEvent)]
    assert percents == sorted(percents) and percents[-1] == 100
    assert leftovers(comfy) == []


# A template for a character (defaults, overrides, pack assets): tests/worker/test_assets.py.


async def test_a_seed_batch_is_one_prompt_with_an_image_per_seed(runtime: WorkerRuntime, comfy: Comfy) -> None:
    job = {
        "template": "image/sdxl-basic",
        "params": {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "seeds": [1, 2]},
    }
    _events, final = await collect(runtime, {"id": "batch-1", "input": job})
    result = result_of(final)
    assert [o.kind for o in made(result)] == [OutputKind.IMAGE, OutputKind.IMAGE]
    assert sorted(o.node_id for o in made(result)) == ["2:9", "9"]
    assert len({o.sha256 for o in made(result)}) == 2  # two seeds, two different images
    # Seeds per variant: variant 1's sampler keeps its id, variant 2's is its copy.
    assert [(s.node_id, s.value) for s in result.seeds] == [("3", 1), ("2:3", 2)]
    graph = history(comfy, result.prompt_id or "")["prompt"][2]
    # One prompt: the loader and the encoders once, sampler, decode and save once per seed.
    assert sorted(graph) == ["2:3", "2:8", "2:9", "3", "4", "5", "6", "7", "8", "9"]
    assert graph["2:3"]["inputs"]["seed"] == 2 and graph["2:3"]["inputs"]["model"] == ["4", 0]


async def test_aspect_ratio_changes_the_output_size(runtime: WorkerRuntime) -> None:
    job = {
        "template": "image/sdxl-basic",
        "params": {"prompt": "a lighthouse", "steps": 1, "aspect_ratio": "2:1", "megapixels": 0.01},
    }
    _events, final = await collect(runtime, {"id": "wide-1", "input": job})
    (output,) = made(result_of(final))
    assert (output.width, output.height) == (128, 64)


async def test_a_bad_edit_parameter_is_invalid_input_with_its_path(runtime: WorkerRuntime) -> None:
    job = {"workflow": sampler_graph(), "params": {"count": 99}}
    _events, final = await collect(runtime, {"id": "bad-edit", "input": job})
    assert final.error is not None and final.error.code is ErrorCode.INVALID_INPUT
    assert [p.path for p in final.error.problems] == ["input.params.count"]


async def test_a_ui_workflow_is_converted_with_the_live_catalogue(runtime: WorkerRuntime) -> None:
    ui = ui_image_graph()
    _events, final = await collect(runtime, {"id": "ui-1", "input": {"workflow": ui}})
    result = result_of(final)
    assert [(o.node_id, o.width, o.height) for o in made(result)] == [("2", 40, 30)]


async def test_media_is_staged_in_the_job_folder_and_parameters_renamed(runtime: WorkerRuntime, comfy: Comfy) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), (10, 20, 30)).save(buffer, "PNG")
    job = {
        "workflow": load_image_graph("face.png"),
        "media": [{"name": "face.png", "base64": base64.b64encode(buffer.getvalue()).decode()}],
    }
    _events, final = await collect(runtime, {"id": "media-1", "input": job})
    result = result_of(final)
    assert [(o.width, o.height) for o in made(result)] == [(12, 10)]
    graph = history(comfy, result.prompt_id or "")["prompt"][2]
    assert graph["1"]["inputs"]["image"] == "media-1/face.png"
    assert leftovers(comfy) == []  # the staged input went with the job


async def test_only_file_inputs_bind_to_media(runtime: WorkerRuntime, comfy: Comfy) -> None:
    """A media item named like another input's value (here a text node's ``"face.png"``) renames only the inputs
    that take a file, as the catalogue says (issue 11, item 11)."""
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), (10, 20, 30)).save(buffer, "PNG")
    graph = {
        **load_image_graph("face.png"),
        "7": {"class_type": "PrimitiveString", "inputs": {"value": "face.png"}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}},
    }
    media = [{"name": "face.png", "base64": base64.b64encode(buffer.getvalue()).decode()}]
    _events, final = await collect(runtime, {"id": "media-2", "input": {"workflow": graph, "media": media}})
    result = result_of(final)
    sent = history(comfy, result.prompt_id or "")["prompt"][2]
    assert sent["1"]["inputs"]["image"] == "media-2/face.png"
    assert sent["7"]["inputs"]["value"] == "face.png"
    assert [o.text for o in made(result) if o.text is not None] == ["face.png"]


# ---------------------------------------------------------------------------------------------------- failures


async def test_our_validation_maps_each_bad_field(runtime: WorkerRuntime, comfy: Comfy) -> None:
    graph = sampler_graph()
    graph["3"]["inputs"]["steps"] = 0
    graph["3"]["inputs"]["sampler_name"] = "no_such_sampler"
    _events, final = await collect(runtime, {"id": "invalid-1", "input": {"workflow": graph}})
    error = final.error
    assert error is not None and error.code is ErrorCode.WORKFLOW_INVALID and not error.retryable
    fields = {(e.node_id, e.input): e for e in error.node_errors}
    assert set(fields) == {("3", "steps"), ("3", "sampler_name")}
    assert fields[("3", "steps")].type == "value_smaller_than_min"
    assert fields[("3", "sampler_name")].type == "value_not_in_list"
    assert "euler" in (fields[("3", "sampler_name")].allowed or [])
    assert history(comfy, prompt_id_for("invalid-1")) == {}  # never queued


async def test_comfyuis_own_400_is_mapped_field_by_field(runtime: WorkerRuntime) -> None:
    # Upload combos are ComfyUI's to check (against its input folder): our validation lets this through.
    _events, final = await collect(runtime, {"id": "rejected-1", "input": {"workflow": load_image_graph("nope.png")}})
    error = final.error
    assert error is not None and error.code is ErrorCode.WORKFLOW_INVALID
    (node_error,) = error.node_errors
    assert (node_error.node_id, node_error.class_type, node_error.input) == ("1", "LoadImage", "image")
    assert node_error.type == "custom_validation_failed" and "nope.png" in node_error.message  # LoadImage's own check


async def test_an_execution_error_names_the_node(runtime: WorkerRuntime, comfy: Comfy) -> None:
    faults(comfy, error_at="KSampler", error_message="CUDA out of memory")
    _events, final = await collect(runtime, {"id": "exec-1", "input": {"workflow": sampler_graph(seed=2003)}})
    error = final.error
    assert error is not None and error.code is ErrorCode.EXECUTION_FAILED
    assert error.execution is not None and error.execution.node_id == "3"
    assert "CUDA out of memory" in error.message and error.prompt_id == prompt_id_for("exec-1")
    assert leftovers(comfy) == []


async def test_a_dropped_websocket_does_not_lose_the_job(runtime: WorkerRuntime, comfy: Comfy) -> None:
    faults(comfy, ws_drop_after=6)
    _events, final = await collect(runtime, {"id": "drop-1", "input": {"workflow": sampler_graph(steps=4, seed=2004)}})
    result = result_of(final)
    assert [o.kind for o in made(result)] == [OutputKind.IMAGE]
    # The socket really was dropped during the job (and the client reconnects on its own).
    await wait_until(lambda: runtime.comfy.socket_connects >= 2, "the WebSocket to reconnect")


async def test_cancel_interrupts_the_prompt_and_cleans_up(runtime: WorkerRuntime, comfy: Comfy) -> None:
    faults(comfy, hold_at="3")
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG")
    graph = sampler_graph(seed=2001)
    graph["10"] = {"class_type": "LoadImage", "inputs": {"image": "ref.png"}}
    graph["11"] = {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}}
    job = {"workflow": graph, "media": [{"name": "ref.png", "base64": base64.b64encode(buffer.getvalue()).decode()}]}
    held = asyncio.Event()

    async def run() -> None:
        async for event in runtime.run_job({"id": "cancel-1", "input": job}):
            if isinstance(event, ProgressEvent) and event.node_id == "3":
                held.set()

    task = asyncio.create_task(run())
    await asyncio.wait_for(held.wait(), 30)
    assert (comfy.input_dir / "cancel-1").is_dir()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    entry = history(comfy, prompt_id_for("cancel-1"))
    assert entry["status"]["status_str"] == "error"
    assert any(kind == "execution_interrupted" for kind, _ in entry["status"]["messages"])
    queue = httpx.get(comfy.url + "/queue").json()
    assert queue == {"queue_running": [], "queue_pending": []}
    assert not (comfy.input_dir / "cancel-1").exists()


async def test_a_retry_adopts_the_prompt_its_first_attempt_left_running(runtime: WorkerRuntime, comfy: Comfy) -> None:
    # The first attempt queued the prompt (same job id, so the same prompt id; same worker, so the same client id)
    # and went away; the prompt still runs. The retry follows it instead of queueing a second run.
    faults(comfy, hold_at="3")
    prompt_id = prompt_id_for("adopt-1")
    queued = httpx.post(
        comfy.url + "/prompt",
        json={
            "prompt": prepare_run(
                BoundWorkflow(graph=sampler_graph(seed=2006)), job_id="adopt-1", attempt="first"
            ),  # as the first attempt did
            "prompt_id": prompt_id,
            "client_id": runtime._client_id,
        },
    )
    assert queued.status_code == 200
    adopted = asyncio.Event()
    loop = asyncio.get_running_loop()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("adopted prompt"):
                loop.call_soon_threadsafe(adopted.set)

    watch = Watch()
    core_logger = logging.getLogger("handlers.worker.core")
    level = core_logger.level
    core_logger.setLevel(logging.INFO)
    core_logger.addHandler(watch)
    try:
        task = asyncio.create_task(collect(runtime, {"id": "adopt-1", "input": {"workflow": sampler_graph(seed=2006)}}))
        await asyncio.wait_for(adopted.wait(), 30)
        httpx.post(comfy.url + "/_emulator/release").raise_for_status()
        _events, final = await asyncio.wait_for(task, 30)
    finally:
        core_logger.removeHandler(watch)
        core_logger.setLevel(level)
    result = result_of(final)
    assert [o.kind for o in made(result)] == [OutputKind.IMAGE] and result.prompt_id == prompt_id
    starts = [m for m in history(comfy, prompt_id)["status"]["messages"] if m[0] == "execution_start"]
    assert len(starts) == 1  # one run: adopted, not queued again
    assert leftovers(comfy) == []


async def test_the_deadline_interrupts_and_reports_timed_out(runtime: WorkerRuntime, comfy: Comfy) -> None:
    faults(comfy, hold_at="3")
    job = {"workflow": sampler_graph(seed=2002), "timeout_s": 1}
    _events, final = await collect(runtime, {"id": "late-1", "input": job})
    assert final.error is not None and final.error.code is ErrorCode.TIMED_OUT
    entry = history(comfy, prompt_id_for("late-1"))
    assert any(kind == "execution_interrupted" for kind, _ in entry["status"]["messages"])


async def test_a_duplicate_job_id_returns_the_stored_manifest_without_running(
    runtime: WorkerRuntime, comfy: Comfy
) -> None:
    first_events, first = await collect(runtime, {"id": "rp-1", "input": {"workflow": mixed_graph(), "job_id": "dup"}})
    httpx.post(comfy.url + "/history", json={"clear": True})
    second_events, second = await collect(
        runtime, {"id": "rp-2", "input": {"workflow": mixed_graph(), "job_id": "dup"}}
    )
    assert result_of(second) == result_of(first)
    assert first_events and second_events == []
    assert history(comfy, prompt_id_for("dup")) == {}  # no second prompt


async def test_a_reused_job_id_with_another_input_is_a_conflict(runtime: WorkerRuntime, comfy: Comfy) -> None:
    """The manifest keeps the input digest: a different input under a used id is never answered with the earlier
    result; the same input still replays (issue 11, item 9)."""
    _events, first = await collect(runtime, {"id": "rp-1", "input": {"workflow": mixed_graph(), "job_id": "reused"}})
    assert result_of(first).input_digest is not None
    httpx.post(comfy.url + "/history", json={"clear": True})
    events, other = await collect(
        runtime, {"id": "rp-2", "input": {"workflow": mixed_graph("another"), "job_id": "reused"}}
    )
    assert other.error is not None and other.error.code is ErrorCode.CONFLICT and not other.error.retryable
    assert events == [] and history(comfy, prompt_id_for("reused")) == {}
    # Delivery details (timeout, a progress webhook dispatch adds) do not make another job.
    same = {"workflow": mixed_graph(), "job_id": "reused", "timeout_s": 77}
    _events, again = await collect(runtime, {"id": "rp-3", "input": same})
    assert result_of(again) == result_of(first)


async def test_s3_throttling_is_retried(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    rt = _proxied_runtime(comfy, fault_proxy, s3_bucket, tmp_path)
    fault_proxy.state.fail_next = 2
    fault_proxy.state.only = "still"
    try:
        _events, final = await collect(rt, {"id": "slow-1", "input": {"workflow": mixed_graph()}})
    finally:
        await rt.aclose()
    result = result_of(final)
    assert fault_proxy.state.failed == 2
    assert len([o for o in made(result) if o.s3_uri]) == 3
    assert "jobs/slow-1/manifest.json" in s3_keys(moto_endpoint, s3_bucket)


async def test_s3_failing_for_good_fails_the_job_and_writes_no_manifest(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    rt = _proxied_runtime(comfy, fault_proxy, s3_bucket, tmp_path)
    fault_proxy.state.fail_always = True
    fault_proxy.state.only = "anim"
    try:
        _events, final = await collect(rt, {"id": "s3down-1", "input": {"workflow": mixed_graph()}})
    finally:
        await rt.aclose()
    assert final.error is not None and final.error.code is ErrorCode.UPLOAD_FAILED and final.error.retryable
    assert "jobs/s3down-1/manifest.json" not in s3_keys(moto_endpoint, s3_bucket)
    assert leftovers(comfy) == []


async def test_a_retry_after_a_failed_upload_runs_the_prompt_again(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    # The first attempt's prompt finished, but its upload failed and its files were removed with the job: the
    # retry (same job id, same worker) must not adopt that run - its files are gone - but run it again.
    rt = _proxied_runtime(comfy, fault_proxy, s3_bucket, tmp_path)
    fault_proxy.state.fail_always = True
    fault_proxy.state.only = "still"
    job = {"id": "retry-1", "input": {"workflow": mixed_graph(prefix="retry")}}
    try:
        _events, first = await collect(rt, job)
        assert first.error is not None and first.error.code is ErrorCode.UPLOAD_FAILED
        assert history(comfy, prompt_id_for("retry-1"))["status"]["status_str"] == "success"
        fault_proxy.state.fail_always = False
        _events, second = await collect(rt, job)
    finally:
        await rt.aclose()
    result = result_of(second)
    assert len([o for o in made(result) if o.s3_uri]) == 3
    assert "jobs/retry-1/manifest.json" in s3_keys(moto_endpoint, s3_bucket)
    assert leftovers(comfy) == []


def _proxied_runtime(comfy: Comfy, proxy: FaultProxy, bucket: str, tmp_path: Path) -> WorkerRuntime:
    rt = runtime_for(comfy, proxy.server.url, bucket, scratch=tmp_path / "scratch")
    client = make_s3_client(proxy.server.url, max_attempts=3)
    rt._store_factory = lambda b, p: S3OutputStore(b, p, client=client)
    return rt


@pytest.mark.parametrize(
    ("media", "where"),
    [
        ({"name": "meta.png", "url": "http://169.254.169.254/latest/meta-data/"}, "input.media[0]"),
        ({"name": "local.png", "url": "http://127.0.0.1:1/secret.png"}, "input.media[0]"),
        ({"name": "../../etc/passwd", "base64": "aGVsbG8="}, "input.media[0].name"),
        ({"name": "bad.png", "base64": "!!! not base64 !!!"}, "input.media[0].base64"),
        ({"name": "text.png", "base64": base64.b64encode(b"just some text, not an image").decode()}, "input.media[0]"),
    ],
)
async def test_hostile_media_is_refused_and_nothing_is_written(
    runtime: WorkerRuntime, comfy: Comfy, media: dict[str, str], where: str
) -> None:
    job = {"workflow": load_image_graph(media["name"]), "media": [media]}
    _events, final = await collect(runtime, {"id": "hostile-1", "input": job})
    error = final.error
    assert error is not None and error.code is ErrorCode.INVALID_INPUT and not error.retryable
    assert [p.path for p in error.problems] == [where]
    assert leftovers(comfy) == []
    assert history(comfy, prompt_id_for("hostile-1")) == {}


async def test_oversize_media_is_refused(comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "scratch", media_max_bytes=1000)
    from handlers.worker import MediaFetcher, MediaLimits

    rt._fetcher = MediaFetcher(MediaLimits(max_bytes=1000))
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).save(buffer, "PNG")
    job = {
        "workflow": load_image_graph("big.png"),
        "media": [{"name": "big.png", "base64": base64.b64encode(buffer.getvalue()).decode()}],
    }
    try:
        _events, final = await collect(rt, {"id": "big-1", "input": job})
    finally:
        await rt.aclose()
    assert final.error is not None and final.error.code is ErrorCode.INVALID_INPUT
    assert "limit" in final.error.message
    assert leftovers(comfy) == []


async def test_a_job_that_is_not_a_job_is_rejected_with_every_problem(runtime: WorkerRuntime) -> None:
    _events, final = await collect(runtime, {"id": "bad-1", "input": {"timeout_s": 0, "params": {"1x": 2}}})
    error = final.error
    assert error is not None and error.code is ErrorCode.INVALID_INPUT
    assert {p.path for p in error.problems} >= {"input.timeout_s", "input"}


# ---------------------------------------------------------------------------------------- remote ComfyUI files


async def test_without_shared_folders_media_is_uploaded_and_outputs_read_through_view(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, local_files=False, scratch=tmp_path / "scratch")
    buffer = io.BytesIO()
    Image.new("RGB", (9, 7), (200, 0, 0)).save(buffer, "PNG")
    job = {
        "workflow": load_image_graph("pic.png"),
        "media": [{"name": "pic.png", "base64": base64.b64encode(buffer.getvalue()).decode()}],
    }
    try:
        _events, final = await collect(rt, {"id": "remote-1", "input": job})
    finally:
        await rt.aclose()
    result = result_of(final)
    (item,) = made(result)
    assert (item.width, item.height) == (9, 7)
    with Image.open(io.BytesIO(s3_object(moto_endpoint, s3_bucket, f"jobs/remote-1/3/{item.filename}"))) as image:
        assert image.getpixel((0, 0)) == (55, 255, 255)  # inverted red
    uploaded = comfy.input_dir / "remote-1"
    assert (uploaded / "pic.png").is_file()  # through /upload/image: ComfyUI has no route to delete it
    shutil.rmtree(uploaded)
    assert not (tmp_path / "scratch").exists() or not any((tmp_path / "scratch").iterdir())


# ---------------------------------------------------------------------------------------------- progress webhook


async def test_progress_webhook_gets_signed_events_in_order(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "scratch", allow_private_urls=True)
    secret = "s3cr3t-s3cr3t-s3cr3t"
    with serve_receiver() as receiver:
        hook = {"url": receiver.url, "secret": secret, "min_interval_ms": 100}
        try:
            _events, final = await collect(
                rt, {"id": "hook-1", "input": {"workflow": mixed_graph(), "progress_webhook": hook}}
            )
        finally:
            await rt.aclose()
        result_of(final)
        requests = list(receiver.requests)
    assert requests
    payloads = []
    for headers, body in requests:
        verify_webhook(secret, headers, body, now=int(json.loads(body)["sent_at_ms"] / 1000))
        payloads.append(ProgressWebhookPayload.model_validate_json(body))
    assert [p.seq for p in payloads] == list(range(len(payloads)))
    assert {p.event.type for p in payloads} == {"progress", "output"}
    assert sum(1 for p in payloads if p.event.type == "output" and p.event.output.role is None) == 4


async def test_a_dead_webhook_never_blocks_the_job(comfy: Comfy, moto_endpoint: str, s3_bucket: str) -> None:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, allow_private_urls=True)
    hook = {"url": "http://127.0.0.1:9/hook", "secret": "s3cr3t-s3cr3t-s3cr3t"}
    try:
        _events, final = await collect(
            rt, {"id": "deadhook-1", "input": {"workflow": mixed_graph(), "progress_webhook": hook}}
        )
    finally:
        await rt.aclose()
    assert len(made(result_of(final))) == 4


async def test_a_webhook_to_a_name_resolving_to_loopback_is_refused(runtime: WorkerRuntime) -> None:
    """The text of the URL is not enough: ``localhost`` resolves to a loopback address (issue 11, item 3)."""
    hook = {"url": "http://localhost:9/hook", "secret": "s3cr3t-s3cr3t-s3cr3t"}
    _events, final = await collect(
        runtime, {"id": "ssrfhook-2", "input": {"workflow": mixed_graph(), "progress_webhook": hook}}
    )
    assert final.error is not None and final.error.code is ErrorCode.INVALID_INPUT
    assert [p.path for p in final.error.problems] == ["input.progress_webhook.url"]
    assert "loopback" in final.error.message


async def test_a_webhook_to_a_private_address_is_refused(runtime: WorkerRuntime) -> None:
    hook = {"url": "http://169.254.169.254/hook", "secret": "s3cr3t-s3cr3t-s3cr3t"}
    _events, final = await collect(
        runtime, {"id": "ssrfhook-1", "input": {"workflow": mixed_graph(), "progress_webhook": hook}}
    )
    assert final.error is not None and final.error.code is ErrorCode.INVALID_INPUT


@pytest.mark.parametrize("prefix", ["../escaped", "a/../../x", "..\\..\\x", "x/../../../../tmp/y"])
async def test_a_filename_prefix_cannot_leave_the_job_folder(
    runtime: WorkerRuntime, comfy: Comfy, moto_endpoint: str, s3_bucket: str, prefix: str
) -> None:
    """``..`` in a prefix is invalid_input before anything runs, and nothing is written anywhere (issue 11, 5)."""
    before = leftovers(comfy)
    _events, final = await collect(runtime, {"id": "prefix-1", "input": {"workflow": mixed_graph(prefix)}})
    assert final.error is not None and final.error.code is ErrorCode.INVALID_INPUT, final.error
    assert {p.path for p in final.error.problems} == {
        f'graph["{node}"].inputs.filename_prefix' for node in ("2", "4", "6")
    }
    assert leftovers(comfy) == before
    assert not [k for k in s3_keys(moto_endpoint, s3_bucket) if "prefix-1" in k]


async def test_a_bucket_the_worker_does_not_own_needs_the_allow_list(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    """``output.bucket`` cannot reach any bucket the worker's role can: not to write outputs, not to read another
    bucket's manifest through the replay path (issue 11, item 10)."""
    s3 = make_s3_client(moto_endpoint)
    other = f"{s3_bucket}-other"
    s3.create_bucket(Bucket=other)
    foreign = {"job_id": "stolen", "outputs": [{"node_id": "9", "kind": "text", "text": "someone else's secret"}]}
    s3.put_object(Bucket=other, Key="jobs/stolen/manifest.json", Body=json.dumps(foreign).encode())
    job = {"id": "rp-b", "input": {"workflow": mixed_graph(), "job_id": "stolen", "output": {"bucket": other}}}
    closed = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "a")
    try:
        events, final = await collect(closed, job)
    finally:
        await closed.aclose()
    assert final.error is not None and final.error.code is ErrorCode.INVALID_INPUT
    assert [p.path for p in final.error.problems] == ["input.output.bucket"] and events == []
    allowed = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "b", extra_buckets=frozenset({other}))
    try:
        _events, final = await collect(allowed, {**job, "input": {**job["input"], "job_id": "fresh"}})
    finally:
        await allowed.aclose()
    assert result_of(final).manifest_uri == f"s3://{other}/jobs/fresh/manifest.json"
