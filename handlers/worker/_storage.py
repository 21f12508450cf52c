"""Where outputs go: the :class:`OutputStore` interface, an S3 implementation and an in-memory one for tests.

Key layout: ``<prefix>/<job id>/<node id>/<file>`` for outputs (or ``<prefix>/<key>`` for a key the job's
``output.name`` chose) and ``<prefix>/<job id>/manifest.json`` for the result, which is written last and is the
commit marker: a retried job with the same id finds it and returns it.

Every boto3 call runs in a thread (``asyncio.to_thread``) so the event loop that follows ComfyUI never blocks.
Uploads stream from disk through ``upload_file`` (multipart above a threshold, bounded in-flight parts), and
botocore's ``standard`` retry mode retries 5xx and throttling (``SlowDown``) a bounded number of times; once those
are spent the failure is raised as :class:`UploadFailed`, never swallowed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol
from urllib.parse import quote

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image

from handlers.contract import ErrorCode, JobError, Problem, is_job_id
from handlers.worker._media import sanitize_name
from handlers.worker._s3 import new_s3_client, s3_config, s3_error_retryable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "MANIFEST_NAME",
    "MemoryOutputStore",
    "OutputNameCollision",
    "OutputStore",
    "OutputTooLarge",
    "S3OutputStore",
    "StorageError",
    "StoredObject",
    "UploadFailed",
    "UploadSettings",
    "convert_audio",
    "convert_image",
    "named_key",
    "object_key",
]

MANIFEST_NAME: Final = "manifest.json"
BUCKET_ENV: Final = "RELAY_S3_BUCKET"
PREFIX_ENV: Final = "RELAY_S3_PREFIX"
_NODE_ID_UNSAFE: Final = re.compile(r"[^A-Za-z0-9:_.-]+")
_MiB: Final = 1024 * 1024


class StorageError(Exception):
    """Storing or reading outputs failed.

    ::

        StorageError            .code = "upload_failed", .retryable
        ├── UploadFailed        an upload or the manifest write failed after the bounded retries
        ├── OutputTooLarge      inline outputs over RunPod's payload limit ("output_too_large")
        └── OutputNameCollision two outputs got the same key from output.name ("invalid_input")
    """

    code: ClassVar[ErrorCode] = ErrorCode.UPLOAD_FAILED

    def __init__(self, message: str, *, key: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.retryable = retryable

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code.value, "message": self.message, "retryable": self.retryable}
        if self.key is not None:
            out["key"] = self.key
        return out

    def to_job_error(self, job_id: str | None = None) -> JobError:
        return JobError(code=self.code, message=self.message, retryable=self.retryable, job_id=job_id)


class UploadFailed(StorageError):
    pass


class OutputTooLarge(StorageError):
    """Outputs returned inline (no bucket) would not fit in RunPod's payload limit."""

    code: ClassVar[ErrorCode] = ErrorCode.OUTPUT_TOO_LARGE


class OutputNameCollision(StorageError):
    """Two outputs of one job rendered ``output.name`` to the same key (or to the manifest's): nothing is
    overwritten, and the job fails as the invalid input it is."""

    code: ClassVar[ErrorCode] = ErrorCode.INVALID_INPUT

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message, key=key, retryable=False)

    def to_job_error(self, job_id: str | None = None) -> JobError:
        problem = Problem(path="input.output.name", message=self.message)
        return JobError(code=self.code, message=str(problem), retryable=False, problems=[problem], job_id=job_id)


@dataclass(frozen=True, slots=True)
class StoredObject:
    bucket: str
    key: str
    bytes: int
    #: The content as base64, when the store returns outputs inline instead of keeping them (no bucket).
    inline: str | None = None

    @property
    def uri(self) -> str | None:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else None


@dataclass(frozen=True, slots=True)
class UploadSettings:
    """Limits of the S3 side; all finite. Memory in flight is about ``chunk_bytes * max_concurrency``."""

    multipart_threshold_bytes: int = 16 * _MiB
    chunk_bytes: int = 8 * _MiB
    max_concurrency: int = 4
    max_attempts: int = 5
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.chunk_bytes < 5 * _MiB:
            raise ValueError("UploadSettings.chunk_bytes must be >= 5 MiB (S3's minimum part size)")
        if self.max_concurrency < 1 or self.max_attempts < 1:
            raise ValueError("UploadSettings.max_concurrency and max_attempts must be >= 1")

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold_bytes,
            multipart_chunksize=self.chunk_bytes,
            max_concurrency=self.max_concurrency,
            use_threads=True,
        )

    def botocore_config(self) -> Config:
        return s3_config(
            max_attempts=self.max_attempts,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_pool_connections=max(10, self.max_concurrency * 2),
        )


def _clean_prefix(prefix: str) -> str:
    parts = [p for p in prefix.strip("/").split("/") if p]
    if any(p in {".", ".."} for p in parts):
        raise ValueError(f"prefix {prefix!r} must not contain '.' or '..' segments")
    return "/".join(parts)


def object_key(prefix: str, job_id: str, *parts: str) -> str:
    """``<prefix>/<job id>/<parts...>`` with every segment made safe; an empty prefix adds no leading slash."""
    if not is_job_id(job_id):
        raise ValueError(f"job id {job_id!r} cannot be part of an object key")
    segments = [_clean_prefix(prefix), job_id]
    for part in parts[:-1]:
        segments.append(_NODE_ID_UNSAFE.sub("_", part).strip(".") or "_")
    if parts:
        segments.append(sanitize_name(parts[-1], fallback="output"))
    return "/".join(s for s in segments if s)


def named_key(prefix: str, key: str) -> str:
    """``<prefix>/<key>`` for a key rendered from ``output.name`` (already a safe relative key)."""
    return "/".join(s for s in (_clean_prefix(prefix), key) if s)


class OutputStore(Protocol):
    """Where a job's outputs and manifest are stored."""

    bucket: str
    prefix: str

    async def upload(
        self,
        job_id: str,
        node_id: str,
        path: Path,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        key: str | None = None,
    ) -> StoredObject:
        """Store the file at ``<prefix>/<job id>/<node id>/<filename or path.name>``, or at ``<prefix>/<key>``
        when ``key`` is given; raises UploadFailed."""
        ...

    async def presign(self, obj: StoredObject, expires_s: int) -> str:
        """A GET URL for ``obj`` valid for ``expires_s`` seconds."""
        ...

    async def write_manifest(self, job_id: str, result: Mapping[str, Any]) -> StoredObject:
        """Write ``manifest.json`` for the job. Call it last: its presence means the job is complete."""
        ...

    async def read_manifest(self, job_id: str) -> dict[str, Any] | None:
        """The stored manifest of a completed job, or ``None`` if there is none."""
        ...


def _manifest_bytes(result: Mapping[str, Any]) -> bytes:
    return json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class S3OutputStore:
    """Outputs in S3 (or anything that speaks it). ``client=None`` builds boto3's client from the standard
    environment (credentials chain, ``AWS_REGION``, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: S3Client | None = None,
        settings: UploadSettings | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = _clean_prefix(prefix)
        self.settings = settings or UploadSettings()
        self._client = client
        self._transfer = self.settings.transfer_config()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, client: S3Client | None = None) -> S3OutputStore:
        env = os.environ if environ is None else environ
        bucket = env.get(BUCKET_ENV, "")
        if not bucket:
            raise ValueError(f"{BUCKET_ENV} is not set: no bucket for outputs")
        return cls(bucket, env.get(PREFIX_ENV, ""), client=client)

    def _new_client(self) -> S3Client:
        return new_s3_client(self.settings.botocore_config())

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def _async_client(self) -> S3Client:
        """:attr:`client` for the async methods: building it loads botocore's service model from disk, so the first
        build runs in a thread like every other boto3 call."""
        if self._client is None:
            built = await asyncio.to_thread(self._new_client)
            self._client = self._client or built  # a concurrent call may have built one meanwhile: keep the first
        return self._client

    async def upload(
        self,
        job_id: str,
        node_id: str,
        path: Path,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        key: str | None = None,
    ) -> StoredObject:
        key = (
            named_key(self.prefix, key)
            if key is not None
            else object_key(self.prefix, job_id, node_id, filename or path.name)
        )
        extra: dict[str, Any] = {"ContentType": content_type or "application/octet-stream"}
        client = await self._async_client()

        def run() -> int:
            size = path.stat().st_size
            if size < self.settings.multipart_threshold_bytes:
                # One PUT streamed from the open file: the transfer manager's thread pool costs more than it
                # saves below the multipart threshold (botocore rewinds the file on a retry).
                with path.open("rb") as body:
                    client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
            else:
                client.upload_file(str(path), self.bucket, key, ExtraArgs=extra, Config=self._transfer)
            return size

        try:
            size = await asyncio.to_thread(run)
        except S3UploadFailedError as exc:
            raise UploadFailed(f"upload of {path.name} failed after retries: {exc}", key=key) from exc
        except ClientError as exc:
            retryable = s3_error_retryable(exc)
            # A retryable error got here only after botocore's bounded retries were spent.
            how = "failed after retries" if retryable else "failed"
            raise UploadFailed(f"upload of {path.name} {how}: {exc}", key=key, retryable=retryable) from exc
        except BotoCoreError as exc:
            raise UploadFailed(f"upload of {path.name} failed: {exc}", key=key) from exc
        except OSError as exc:
            raise UploadFailed(f"cannot read {path}: {exc}", key=key, retryable=False) from exc
        return StoredObject(self.bucket, key, size)

    async def presign(self, obj: StoredObject, expires_s: int) -> str:
        params = {"Bucket": obj.bucket, "Key": obj.key}
        client = await self._async_client()
        try:
            return await asyncio.to_thread(
                client.generate_presigned_url, "get_object", Params=params, ExpiresIn=expires_s
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot presign {obj.key}: {exc}", key=obj.key) from exc

    def _manifest_key(self, job_id: str) -> str:
        return object_key(self.prefix, job_id, MANIFEST_NAME)

    async def write_manifest(self, job_id: str, result: Mapping[str, Any]) -> StoredObject:
        key = self._manifest_key(job_id)
        body = _manifest_bytes(result)
        client = await self._async_client()
        try:
            await asyncio.to_thread(
                client.put_object, Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"
            )
        except ClientError as exc:
            raise UploadFailed(f"manifest write failed: {exc}", key=key, retryable=s3_error_retryable(exc)) from exc
        except BotoCoreError as exc:
            raise UploadFailed(f"manifest write failed: {exc}", key=key) from exc
        return StoredObject(self.bucket, key, len(body))

    async def read_manifest(self, job_id: str) -> dict[str, Any] | None:
        key = self._manifest_key(job_id)
        client = await self._async_client()

        def run() -> bytes | None:
            try:
                response = client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in {"NoSuchKey", "404", "NotFound"}:
                    return None
                raise
            with response["Body"] as body:
                return body.read()

        try:
            raw = await asyncio.to_thread(run)
        except ClientError as exc:
            raise StorageError(f"manifest read failed: {exc}", key=key, retryable=s3_error_retryable(exc)) from exc
        except BotoCoreError as exc:
            raise StorageError(f"manifest read failed: {exc}", key=key) from exc
        if raw is None:
            return None
        try:
            manifest = json.loads(raw)
        except ValueError as exc:
            raise StorageError(f"manifest {key} is not JSON", key=key, retryable=False) from exc
        if not isinstance(manifest, dict):
            raise StorageError(f"manifest {key} is not a JSON object", key=key, retryable=False)
        return manifest


class MemoryOutputStore:
    """An in-memory store for unit tests. ``fail_uploads`` makes the next N uploads raise UploadFailed."""

    def __init__(self, bucket: str = "memory-bucket", prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = _clean_prefix(prefix)
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.fail_uploads = 0
        self.writes: list[str] = []

    async def upload(
        self,
        job_id: str,
        node_id: str,
        path: Path,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        key: str | None = None,
    ) -> StoredObject:
        key = (
            named_key(self.prefix, key)
            if key is not None
            else object_key(self.prefix, job_id, node_id, filename or path.name)
        )
        if self.fail_uploads > 0:
            self.fail_uploads -= 1
            raise UploadFailed(f"injected upload failure for {key}", key=key)
        data = await asyncio.to_thread(path.read_bytes)
        self.objects[key] = data
        self.content_types[key] = content_type or "application/octet-stream"
        self.writes.append(key)
        return StoredObject(self.bucket, key, len(data))

    async def presign(self, obj: StoredObject, expires_s: int) -> str:
        return f"memory://{obj.bucket}/{quote(obj.key)}?expires={expires_s}"

    async def write_manifest(self, job_id: str, result: Mapping[str, Any]) -> StoredObject:
        key = object_key(self.prefix, job_id, MANIFEST_NAME)
        body = _manifest_bytes(result)
        self.objects[key] = body
        self.writes.append(key)
        return StoredObject(self.bucket, key, len(body))

    async def read_manifest(self, job_id: str) -> dict[str, Any] | None:
        raw = self.objects.get(object_key(self.prefix, job_id, MANIFEST_NAME))
        if raw is None:
            return None
        manifest: dict[str, Any] = json.loads(raw)
        return manifest


# ---------------------------------------------------------------------------------------------------------------
# Conversion

_FORMATS: Final[dict[str, tuple[str, str, str]]] = {
    "png": ("PNG", "png", "image/png"),
    "jpeg": ("JPEG", "jpg", "image/jpeg"),
    "webp": ("WEBP", "webp", "image/webp"),
}


def convert_image(src: Path, fmt: str, quality: int | None, work_dir: Path) -> tuple[Path, str, str]:
    """Re-encode a still image as png|jpeg|webp into ``work_dir``; returns (path, file name to store, MIME).

    Blocking (Pillow): run in a thread. JPEG has no alpha, so transparent pixels are flattened onto white rather
    than turning black.
    """
    try:
        pil_format, ext, mime = _FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unsupported output format {fmt!r}; use png, jpeg or webp") from None
    stored_name = f"{src.stem}.{ext}"
    with Image.open(src) as img:
        if img.format == pil_format == "PNG":
            # Already PNG: re-encoding would only lose the workflow ComfyUI wrote into it (its text chunks).
            return src, stored_name, mime
        out = work_dir / f".{secrets.token_hex(6)}.{stored_name}"
        img.load()
        image: Image.Image = img
        if pil_format == "JPEG" and image.mode not in ("RGB", "L"):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        options: dict[str, Any] = {}
        if pil_format in ("JPEG", "WEBP"):
            options["quality"] = quality if quality is not None else 90
        image.save(out, format=pil_format, **options)
    return out, stored_name, mime


_AUDIO_FORMATS: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    # format -> (libsndfile container, MIME, sample formats it keeps as they are; others become 16-bit PCM)
    "wav": ("WAV", "audio/wav", ("PCM_16", "PCM_24", "PCM_32", "FLOAT")),
    "flac": ("FLAC", "audio/flac", ("PCM_16", "PCM_24")),
}


def convert_audio(src: Path, fmt: str, work_dir: Path) -> tuple[Path, str, str]:
    """Re-encode audio (FLAC, WAV, MP3, Opus: what ComfyUI's savers write) as wav|flac into ``work_dir``; returns
    (path, file name to store, MIME). A file already in that format is returned as it is.

    Blocking (libsndfile through ``soundfile``): run in a thread. Sample rate and channels are kept; the sample
    format too where the target holds it (a 24-bit FLAC stays 24-bit in WAV), else 16-bit PCM.
    """
    import soundfile  # noqa: PLC0415 - numpy and libsndfile load only when a job asks for audio conversion

    try:
        container, mime, kept = _AUDIO_FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unsupported audio format {fmt!r}; use wav or flac") from None
    stored_name = f"{src.stem}.{fmt}"
    if src.suffix.lower() == f".{fmt}":
        return src, src.name, mime
    out = work_dir / f".{secrets.token_hex(6)}.{stored_name}"
    try:
        info = soundfile.info(str(src))
        data, rate = soundfile.read(str(src), dtype="float32", always_2d=True)
        subtype = info.subtype if info.subtype in kept else "PCM_16"
        soundfile.write(str(out), data, rate, format=container, subtype=subtype)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise ValueError(str(exc)) from exc
    return out, stored_name, mime
