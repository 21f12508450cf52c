"""Output storage: key layout and the in-memory store (unit), then S3 for real against moto in server mode:
multipart, presigned GETs, the manifest, and 503 SlowDown injected by a proxy (retried, then UploadFailed)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from botocore.retries.standard import ExponentialBackoff
from PIL import Image

from handlers.worker._storage import (
    MemoryOutputStore,
    OutputStore,
    S3OutputStore,
    StoredObject,
    UploadFailed,
    UploadSettings,
    convert_image,
    object_key,
)
from tests.worker.conftest import FaultProxy, make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore backs off up to seconds on SlowDown; the retry logic is the same with no wait."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


def test_object_key_layout() -> None:
    assert object_key("outputs/team-a/", "job-1", "9", "img_00001_.png") == "outputs/team-a/job-1/9/img_00001_.png"
    assert object_key("", "job-1", "manifest.json") == "job-1/manifest.json"
    assert object_key("p", "job-1", "7:12", "../../x.png") == "p/job-1/7:12/x.png"
    assert object_key("p", "job-1", "a/b", "f.png") == "p/job-1/a_b/f.png"
    with pytest.raises(ValueError, match="job id"):
        object_key("p", "../job", "n", "f")
    with pytest.raises(ValueError, match="segments"):
        object_key("a/../b", "job", "n", "f")


def test_upload_settings_are_bounded() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        UploadSettings(chunk_bytes=MiB)
    config = UploadSettings().transfer_config()
    assert config.multipart_chunksize * config.max_request_concurrency <= 64 * MiB


async def test_memory_store_round_trip(tmp_path: Path) -> None:
    store: OutputStore = MemoryOutputStore(prefix="pre")
    path = tmp_path / "a.png"
    path.write_bytes(b"abc")
    obj = await store.upload("job-1", "4", path, content_type="image/png")
    assert obj == StoredObject("memory-bucket", "pre/job-1/4/a.png", 3)
    assert obj.uri == "s3://memory-bucket/pre/job-1/4/a.png"
    assert await store.read_manifest("job-1") is None
    await store.write_manifest("job-1", {"job_id": "job-1"})
    assert await store.read_manifest("job-1") == {"job_id": "job-1"}


def test_convert_image_formats(tmp_path: Path) -> None:
    src = tmp_path / "rgba.png"
    Image.new("RGBA", (10, 8), (255, 0, 0, 0)).save(src)
    out, name, mime = convert_image(src, "jpeg", 80, tmp_path)
    assert (name, mime) == ("rgba.jpg", "image/jpeg")
    with Image.open(out) as img:
        assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (10, 8))
        assert img.getpixel((0, 0)) == pytest.approx((255, 255, 255), abs=3)  # transparent -> white, not black
    out, name, mime = convert_image(src, "webp", 50, tmp_path)
    with Image.open(out) as img:
        assert (img.format, name, mime) == ("WEBP", "rgba.webp", "image/webp")
    with pytest.raises(ValueError, match="unsupported"):
        convert_image(src, "tiff", None, tmp_path)


# -- S3 against moto --------------------------------------------------------------------------------------------


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    with path.open("wb") as fh:
        block = os.urandom(MiB)
        for start in range(0, size, MiB):
            fh.write(block[: min(MiB, size - start)])
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_s3_upload_presign_and_fetch(tmp_path: Path, s3_client: S3Client, s3_bucket: str) -> None:
    store = S3OutputStore(s3_bucket, "outputs", client=s3_client)
    path = _file(tmp_path, "img_00001_.png", 1000)
    obj = await store.upload("job-1", "9", path, content_type="image/png")
    assert obj.uri == f"s3://{s3_bucket}/outputs/job-1/9/img_00001_.png"
    head = s3_client.head_object(Bucket=s3_bucket, Key=obj.key)
    assert (head["ContentLength"], head["ContentType"]) == (1000, "image/png")
    url = await store.presign(obj, 600)
    assert "X-Amz-Expires=600" in url
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == path.read_bytes()


async def test_s3_multipart_above_threshold(tmp_path: Path, s3_client: S3Client, s3_bucket: str) -> None:
    settings = UploadSettings(multipart_threshold_bytes=5 * MiB, chunk_bytes=5 * MiB, max_concurrency=2)
    store = S3OutputStore(s3_bucket, client=s3_client, settings=settings)
    path = _file(tmp_path, "video.mp4", 12 * MiB + 123)
    obj = await store.upload("job-2", "7", path, content_type="video/mp4")
    head = s3_client.head_object(Bucket=s3_bucket, Key=obj.key)
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 2 MiB
    body = s3_client.get_object(Bucket=s3_bucket, Key=obj.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == _sha(path)
    assert obj.bytes == 12 * MiB + 123


async def test_s3_manifest_round_trip(s3_client: S3Client, s3_bucket: str) -> None:
    store = S3OutputStore(s3_bucket, "p", client=s3_client)
    assert await store.read_manifest("job-3") is None
    result = {"job_id": "job-3", "outputs": [{"node_id": "9", "kind": "image", "text": "é"}]}
    obj = await store.write_manifest("job-3", result)
    assert obj.key == "p/job-3/manifest.json"
    assert await store.read_manifest("job-3") == result
    head = s3_client.head_object(Bucket=s3_bucket, Key=obj.key)
    assert head["ContentType"] == "application/json"


async def test_s3_missing_bucket_is_upload_failed(tmp_path: Path, s3_client: S3Client) -> None:
    store = S3OutputStore("no-such-bucket-here", client=s3_client)
    with pytest.raises(UploadFailed, match="NoSuchBucket") as info:
        await store.upload("job-4", "1", _file(tmp_path, "a.png", 10))
    assert info.value.code == "upload_failed"
    with pytest.raises(UploadFailed) as info:
        await store.upload("job-4", "1", tmp_path / "vanished.png")
    assert info.value.retryable is False


@pytest.mark.usefixtures("fast_retries")
async def test_slowdown_is_retried(tmp_path: Path, fault_proxy: FaultProxy, s3_bucket: str) -> None:
    client = make_s3_client(fault_proxy.server.url, max_attempts=4)
    store = S3OutputStore(s3_bucket, client=client)
    fault_proxy.state.fail_next = 2
    obj = await store.upload("job-5", "3", _file(tmp_path, "a.png", 2048))
    assert fault_proxy.state.failed == 2
    assert ("PUT", f"/{s3_bucket}/job-5/3/a.png") in [(m, p.split("?")[0]) for m, p in fault_proxy.state.forwarded]
    fault_proxy.state.fail_next = 1
    await store.write_manifest("job-5", {"ok": True})
    assert await store.read_manifest("job-5") == {"ok": True}
    assert fault_proxy.state.failed == 3
    assert obj.bytes == 2048


@pytest.mark.usefixtures("fast_retries")
async def test_multipart_parts_are_retried(tmp_path: Path, fault_proxy: FaultProxy, s3_bucket: str) -> None:
    client = make_s3_client(fault_proxy.server.url, max_attempts=3)
    settings = UploadSettings(multipart_threshold_bytes=5 * MiB, chunk_bytes=5 * MiB, max_concurrency=1)
    store = S3OutputStore(s3_bucket, client=client, settings=settings)
    path = _file(tmp_path, "big.bin", 11 * MiB)
    fault_proxy.state.only = "partNumber="
    fault_proxy.state.fail_next = 2
    obj = await store.upload("job-6", "1", path)
    direct = make_s3_client(fault_proxy.upstream)
    body = direct.get_object(Bucket=s3_bucket, Key=obj.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == _sha(path)
    refused = [parse_qs(urlsplit(path).query)["partNumber"] for _, path in fault_proxy.state.refused]
    assert len(refused) == 2
    assert sum("partNumber=" in path for _, path in fault_proxy.state.forwarded) == 3


@pytest.mark.usefixtures("fast_retries")
async def test_exhausted_retries_raise_upload_failed(tmp_path: Path, fault_proxy: FaultProxy, s3_bucket: str) -> None:
    client = make_s3_client(fault_proxy.server.url, max_attempts=3)
    store = S3OutputStore(s3_bucket, client=client)
    fault_proxy.state.fail_always = True
    with pytest.raises(UploadFailed, match="after retries") as info:
        await store.upload("job-7", "1", _file(tmp_path, "a.png", 100))
    assert info.value.retryable is True
    assert info.value.to_job_error().summary().startswith("upload_failed: upload of a.png failed after retries")
    assert fault_proxy.state.failed == 3  # bounded: exactly max_attempts, never silently skipped
    with pytest.raises(UploadFailed, match="manifest write failed") as info:
        await store.write_manifest("job-7", {"x": 1})
    assert info.value.retryable is True
    assert fault_proxy.state.forwarded == []
    direct = make_s3_client(fault_proxy.upstream)
    assert direct.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


async def test_a_store_without_a_client_builds_one_in_a_thread(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, s3_bucket: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = S3OutputStore(s3_bucket, "")
    built_on: list[int] = []
    build = store._new_client

    def recording() -> S3Client:
        built_on.append(threading.get_ident())
        return build()

    monkeypatch.setattr(store, "_new_client", recording)
    await store.write_manifest("job-6", {"ok": True})
    assert await store.read_manifest("job-6") == {"ok": True}
    # Built once, and not on the event loop's thread (building reads botocore's model files from disk).
    assert len(built_on) == 1 and built_on[0] != threading.get_ident()


def test_store_from_env_uses_the_standard_endpoint_variable(
    monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, s3_bucket: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = S3OutputStore.from_env({"RELAY_S3_BUCKET": s3_bucket, "RELAY_S3_PREFIX": "/a/b/"})
    assert store.prefix == "a/b"
    assert store.client.meta.endpoint_url == moto_endpoint
    with pytest.raises(ValueError, match="RELAY_S3_BUCKET"):
        S3OutputStore.from_env({})


def test_convert_audio_between_wav_and_flac_keeps_the_samples(tmp_path: Path) -> None:
    import array
    import wave

    from handlers.worker._storage import convert_audio

    samples = array.array("h", [(n * 37) % 20000 - 10000 for n in range(24000)])
    src = tmp_path / "voice.wav"
    with wave.open(str(src), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(24000)
        writer.writeframes(samples.tobytes())
    flac, flac_name, flac_mime = convert_audio(src, "flac", tmp_path)
    assert (flac_name, flac_mime) == ("voice.flac", "audio/flac") and flac.read_bytes()[:4] == b"fLaC"
    back, name, mime = convert_audio(flac, "wav", tmp_path)
    assert mime == "audio/wav" and name.endswith(".wav")
    with wave.open(str(back)) as reader:
        assert (reader.getframerate(), reader.getsampwidth(), reader.getnchannels()) == (24000, 2, 1)
        assert array.array("h", reader.readframes(reader.getnframes())) == samples
    assert convert_audio(src, "wav", tmp_path) == (src, "voice.wav", "audio/wav")  # already wav: as it is
    with pytest.raises(ValueError, match="use wav or flac"):
        convert_audio(src, "mp3", tmp_path)
    (tmp_path / "broken.flac").write_bytes(b"not audio")
    with pytest.raises(ValueError):
        convert_audio(tmp_path / "broken.flac", "wav", tmp_path)
