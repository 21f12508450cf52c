"""QA and previews through the worker core against the ComfyUI emulator and moto's S3 on 127.0.0.1: the
emulator's ``black_at`` fault makes VAEDecode return an all-black image (the NaN / fp16 VAE failure)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from handlers.contract import ErrorCode, JobResult, OutputReadyEvent, OutputRole, QaPolicy, QaVerdict
from handlers.worker import WorkerRuntime
from tests.worker._relay import Comfy, collect, made, make_models, result_of, runtime_for, sampler_graph, serve_comfy
from tests.worker.conftest import make_s3_client


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    with serve_comfy(root / "data", make_models(root / "models")) as served:
        yield served


@pytest.fixture(autouse=True)
def _clean_faults(comfy: Comfy) -> Iterator[None]:
    yield
    httpx.delete(comfy.url + "/_emulator/faults")


@pytest.fixture
async def runtime(comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path) -> AsyncIterator[WorkerRuntime]:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "scratch")
    yield rt
    await rt.aclose()


def black_decodes(comfy: Comfy, times: int) -> None:
    httpx.post(comfy.url + "/_emulator/faults", json={"black_at": "VAEDecode", "black_times": times}).raise_for_status()


def job(job_id: str, seed: int, **qa: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"workflow": sampler_graph(seed=seed, size=96), "job_id": job_id}
    if qa:
        body["qa"] = qa
    return {"id": job_id, "input": body}


async def test_a_good_image_passes_and_gets_a_thumbnail_uploaded_beside_it(
    runtime: WorkerRuntime, moto_endpoint: str, s3_bucket: str
) -> None:
    events, final = await collect(runtime, job("qa-ok", 101))
    result = result_of(final)
    (image,) = made(result)
    assert image.qa is not None and image.qa.verdict is QaVerdict.PASS, image.qa
    checks = {c.name: c for c in image.qa.checks}
    assert checks["size"].verdict is QaVerdict.PASS and checks["black"].verdict is QaVerdict.PASS
    assert result.qa is not None and result.qa.verdict is QaVerdict.PASS and len(result.qa.attempts) == 1
    (thumb,) = [o for o in result.outputs if o.role is OutputRole.THUMBNAIL]
    assert thumb.derived_from == image.sha256 and thumb.mime == "image/webp"
    assert thumb.s3_uri is not None
    key = thumb.s3_uri.removeprefix(f"s3://{s3_bucket}/")
    body = make_s3_client(moto_endpoint).get_object(Bucket=s3_bucket, Key=key)["Body"]

    with Image.open(BytesIO(body.read())) as stored:
        assert stored.format == "WEBP" and stored.size == (96, 96)  # never upscaled past its source
    # The thumbnail was announced as an output of its own, after its source.
    ready = [e.output.role for e in events if isinstance(e, OutputReadyEvent)]
    assert ready == [None, OutputRole.THUMBNAIL]


async def test_report_policy_keeps_a_black_image_and_says_it_failed(
    runtime: WorkerRuntime, comfy: Comfy, moto_endpoint: str, s3_bucket: str
) -> None:
    black_decodes(comfy, 1)
    _, final = await collect(runtime, job("qa-report", 102))
    result = result_of(final)
    (image,) = made(result)
    assert image.qa is not None and {"black", "uniform"} <= set(image.qa.failed())
    assert result.qa is not None and result.qa.verdict is QaVerdict.FAIL and result.qa.policy is QaPolicy.REPORT
    # The manifest (the stored result) carries the same verdicts.
    assert result.manifest_uri is not None
    key = result.manifest_uri.removeprefix(f"s3://{s3_bucket}/")
    stored = JobResult.model_validate_json(
        make_s3_client(moto_endpoint).get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    )
    assert stored.qa == result.qa and [o.qa for o in stored.outputs] == [o.qa for o in result.outputs]


async def test_fail_policy_fails_the_job_with_qa_failed_naming_the_output(runtime: WorkerRuntime, comfy: Comfy) -> None:
    black_decodes(comfy, 1)
    _, final = await collect(runtime, job("qa-fail", 103, policy="fail"))
    error = final.error
    assert error is not None and error.code is ErrorCode.QA_FAILED and not error.retryable
    assert error.qa is not None and len(error.qa.attempts) == 1
    (failure,) = error.qa.attempts[0].failures
    assert failure.node_id == "9" and "black" in failure.checks and failure.s3_uri is not None
    assert failure.filename is not None and failure.filename in error.message


async def test_retry_policy_runs_again_with_a_new_seed_and_keeps_every_verdict(
    runtime: WorkerRuntime, comfy: Comfy
) -> None:
    black_decodes(comfy, 1)  # the first decode is black, the retry's is not
    _, final = await collect(runtime, job("qa-retry", 104, policy="retry", max_retries=2))
    result = result_of(final)
    assert result.qa is not None
    assert [a.verdict for a in result.qa.attempts] == [QaVerdict.FAIL, QaVerdict.PASS]
    first, second = result.qa.attempts
    assert first.seeds == {"3.seed": 104} and second.seeds["3.seed"] != 104
    assert [s.value for s in result.seeds] == [second.seeds["3.seed"]]
    (image,) = made(result)  # only the passing attempt's outputs are the result's
    assert image.qa is not None and image.qa.verdict is QaVerdict.PASS


async def test_retry_policy_out_of_attempts_fails_with_each_attempt(runtime: WorkerRuntime, comfy: Comfy) -> None:
    black_decodes(comfy, 10)
    _, final = await collect(runtime, job("qa-retry-out", 105, policy="retry", max_retries=1))
    error = final.error
    assert error is not None and error.code is ErrorCode.QA_FAILED
    assert error.qa is not None and [a.verdict for a in error.qa.attempts] == [QaVerdict.FAIL, QaVerdict.FAIL]
    assert "after 2 attempts" in error.message


async def test_qa_and_previews_can_be_turned_off(runtime: WorkerRuntime) -> None:
    body = job("qa-off", 106, enabled=False)
    body["input"]["output"] = {"previews": {"enabled": False}}
    _, final = await collect(runtime, body)
    result = result_of(final)
    assert [o.qa for o in result.outputs] == [None] and result.qa is None
