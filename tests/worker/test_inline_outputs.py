"""A worker with no bucket returns its outputs inline (base64) within RunPod's payload limits, as worker-comfyui
users expect; outputs that do not fit fail the job with ``output_too_large``, naming the limit."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.contract import ErrorCode, OutputKind
from handlers.worker import WorkerRuntime, _inline_store, make_handler
from handlers.worker._inline_store import RESULT_MARGIN_BYTES, InlineOutputStore, inline_store
from handlers.worker._storage import OutputTooLarge
from tests.worker._relay import Comfy, collect, make_models, mixed_graph, result_of, runtime_for, serve_comfy


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    with serve_comfy(root / "data", make_models(root / "models")) as served:
        yield served


@pytest.fixture
async def bucketless(comfy: Comfy, moto_endpoint: str, tmp_path: Path) -> AsyncIterator[WorkerRuntime]:
    rt = runtime_for(comfy, moto_endpoint, "unused", scratch=tmp_path / "scratch", s3_bucket=None)
    yield rt
    await rt.aclose()


async def test_outputs_come_back_inline_without_a_bucket(bucketless: WorkerRuntime, comfy: Comfy) -> None:
    _events, final = await collect(bucketless, {"id": "inline-1", "input": {"workflow": mixed_graph("inline")}})
    result = result_of(final)
    files = [o for o in result.outputs if o.kind is not OutputKind.TEXT]
    assert {o.kind for o in files} == {OutputKind.IMAGE, OutputKind.ANIMATED, OutputKind.AUDIO}
    for item in files:
        assert item.s3_uri is None and item.url is None
        assert item.base64 is not None
        data = base64.b64decode(item.base64)
        assert len(data) == item.bytes and hashlib.sha256(data).hexdigest() == item.sha256
    assert result.manifest_uri is None


async def test_the_handler_returns_them_whole(bucketless: WorkerRuntime) -> None:
    handler = make_handler(bucketless, progress=lambda job, event: None)
    payload: dict[str, Any] = await handler({"id": "inline-2", "input": {"workflow": mixed_graph("inline2")}})
    images = [o for o in payload["outputs"] if o["kind"] == "image"]
    assert images and base64.b64decode(images[0]["base64"]).startswith(b"\x89PNG")


async def test_outputs_over_the_limit_fail_naming_it(
    bucketless: WorkerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_inline_store, "MAX_RESULT_BYTES", RESULT_MARGIN_BYTES + 200)
    _events, final = await collect(bucketless, {"id": "inline-3", "input": {"workflow": mixed_graph("inline3")}})
    assert final.error is not None
    assert final.error.code is ErrorCode.OUTPUT_TOO_LARGE
    assert not final.error.retryable
    assert "RunPod's 10 MB limit for a /run result" in final.error.message
    assert "RELAY_S3_BUCKET" in final.error.message


async def test_the_store_counts_base64_against_the_budget(tmp_path: Path) -> None:
    store = InlineOutputStore(RESULT_MARGIN_BYTES + 8, "a test limit")
    small = tmp_path / "a.bin"
    small.write_bytes(b"123456")  # 8 bytes of base64: exactly the budget
    stored = await store.upload("job-1", "9", small)
    assert base64.b64decode(stored.inline or "") == b"123456"
    assert stored.uri is None
    with pytest.raises(OutputTooLarge, match="over a test limit"):
        await store.upload("job-1", "9", small)
    assert await store.read_manifest("job-1") is None


def test_streaming_mode_has_the_stream_chunk_limit() -> None:
    assert "1 MB limit per stream chunk" in inline_store(stream=True).limit_name
    assert inline_store(stream=True).budget < inline_store(stream=False).budget


async def test_each_progress_update_lists_the_outputs_stored_so_far(bucketless: WorkerRuntime) -> None:
    # /status shows only the latest update in result mode: a poller must still learn of every output.
    sent: list[dict[str, Any]] = []
    handler = make_handler(bucketless, progress=lambda job, event: sent.append(event))
    payload = await handler({"id": "inline-4", "input": {"workflow": mixed_graph("inline4")}})
    listed = [len(e.get("outputs_ready", [])) for e in sent]
    assert listed == sorted(listed)  # it only grows
    last = sent[-1]["outputs_ready"]
    assert sorted((o["node_id"], o.get("filename")) for o in last) == sorted(
        (o["node_id"], o.get("filename")) for o in payload["outputs"]
    )
    assert all("base64" not in o for e in sent for o in e.get("outputs_ready", []))  # the result carries it
