"""Input media, the I/O half: fetch by URL (through the one SSRF guard, ``handlers.outbound``), decode base64, or
read from S3, and stage the bytes atomically under ``<ComfyUI input dir>/<job id>/<name>``.

Every hop of a URL fetch is pinned by the guard (resolved once, every address checked, the request sent to the
checked address); redirects are followed here, one pinned hop at a time. Proxies from the environment are ignored
(``trust_env=False``): a proxy would make its own, unchecked lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from handlers.contract import is_job_id
from handlers.outbound import (
    AsyncResolver,
    OutboundGuard,
    UnresolvableHost,
    UrlRefused,
    async_system_resolver,
    check_url,
    redact_url,
)
from handlers.worker._media import (
    SNIFF_BYTES,
    DisallowedUrl,
    InvalidMedia,
    MediaError,
    MediaFetchFailed,
    MediaTooLarge,
    UnsafeName,
    UnsupportedMedia,
    decode_base64,
    mime_for_extension,
    sanitize_name,
    sniff,
    validate_name,
    with_extension,
)
from handlers.worker._s3 import new_s3_client_async, s3_config, s3_error_retryable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from handlers.contract import MediaItem

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "InputStager",
    "JobFiles",
    "MediaFetcher",
    "MediaLimits",
    "StagedMedia",
    "job_files",
    "map_httpx_error",
]

ALLOW_PRIVATE_ENV: Final = "RELAY_ALLOW_PRIVATE_URLS"
MAX_BYTES_ENV: Final = "RELAY_MEDIA_MAX_BYTES"
_CHUNK: Final = 64 * 1024
_S3_URI_RE: Final = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^\x00-\x1f]+)")
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_TRUTHY: Final = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """Every limit of input staging; all finite. ``allow_private`` is for local stacks and tests only."""

    max_bytes: int = 512 * 1024 * 1024
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    #: The whole fetch, redirects included: a server dripping one byte per read timeout never trips the read one.
    total_timeout_s: float = 300.0
    max_redirects: int = 5
    allow_private: bool = False
    categories: frozenset[str] = frozenset({"image", "audio", "video", "archive"})
    #: Buckets ``s3://`` media may be read from; ``None``: any the credentials reach (tools and tests only).
    buckets: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in ("max_bytes", "connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MediaLimits.{name} must be > 0")
        if self.max_redirects < 0:
            raise ValueError("MediaLimits.max_redirects must be >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MediaLimits:
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {"allow_private": env.get(ALLOW_PRIVATE_ENV, "").strip().lower() in _TRUTHY}
        if env.get(MAX_BYTES_ENV):
            kwargs["max_bytes"] = int(env[MAX_BYTES_ENV])
        return cls(**kwargs)


def map_httpx_error(exc: httpx.HTTPError, source: str) -> MediaFetchFailed:
    """The single translation of httpx's exceptions into ours."""
    if isinstance(exc, httpx.TimeoutException):
        return MediaFetchFailed(f"timed out fetching media ({type(exc).__name__})", source=source, retryable=True)
    if isinstance(exc, httpx.DecodingError):
        return MediaFetchFailed(f"the server sent an undecodable body: {exc}", source=source, retryable=False)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.ProxyError):
        return MediaFetchFailed(f"cannot fetch media: {exc}", source=source, retryable=False)
    if isinstance(exc, httpx.TransportError):
        if _caused_by(exc, ssl.SSLCertVerificationError):
            return MediaFetchFailed(f"TLS certificate verification failed: {exc}", source=source, retryable=False)
        return MediaFetchFailed(f"network error fetching media: {exc!r}", source=source, retryable=True)
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_error(exc.response.status_code, source)
    return MediaFetchFailed(f"error fetching media: {exc!r}", source=source, retryable=False)


def _disallowed(exc: UrlRefused) -> DisallowedUrl:
    """The guard's refusal as the media error it is for an input (``invalid_input``)."""
    return DisallowedUrl(exc.message, source=exc.source)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _status_error(status: int, source: str) -> MediaFetchFailed:
    retryable = status in (408, 425, 429) or status >= 500
    return MediaFetchFailed(f"media server answered HTTP {status}", source=source, retryable=retryable)


class _Sink:
    """Where fetched bytes go: a file, with the byte cap and the first bytes kept for sniffing."""

    def __init__(self, fh: IO[bytes], max_bytes: int, source: str) -> None:
        self._fh = fh
        self._max = max_bytes
        self._source = source
        self.size = 0
        self.head = b""
        self.sha256 = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max:
            raise MediaTooLarge(f"media is larger than the limit of {self._max} bytes", source=self._source)
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        self.sha256.update(chunk)
        self._fh.write(chunk)


class MediaFetcher:
    """Fetches media by URL (guarded) or from S3, streaming into a sink with a byte cap.

    ``resolver`` and ``transport_factory`` are injectable for tests; ``s3_client=None`` builds a boto3 client from
    the standard environment on first use.
    """

    def __init__(
        self,
        limits: MediaLimits | None = None,
        *,
        resolver: AsyncResolver | None = None,
        transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None,
        s3_client: S3Client | None = None,
    ) -> None:
        self.limits = limits or MediaLimits()
        self._guard = OutboundGuard(
            allow_private=self.limits.allow_private, async_resolver=resolver or async_system_resolver
        )
        self._transport_factory = transport_factory
        self._s3 = s3_client

    # -- HTTP -----------------------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        limits = self.limits
        timeout = httpx.Timeout(
            connect=limits.connect_timeout_s,
            read=limits.read_timeout_s,
            write=limits.read_timeout_s,
            pool=limits.connect_timeout_s,
        )
        transport = (
            self._transport_factory()
            if self._transport_factory is not None
            else httpx.AsyncHTTPTransport(retries=0, trust_env=False)
        )
        return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)

    async def fetch_url(self, url: str, sink: _Sink) -> str:
        """Stream ``url`` into ``sink``; returns the final (redirected) URL, redacted. Raises only MediaError."""
        source = redact_url(url)
        try:
            async with asyncio.timeout(self.limits.total_timeout_s):
                return await self._fetch_url(url, sink)
        except TimeoutError as exc:
            raise MediaFetchFailed(
                f"fetching media took longer than {self.limits.total_timeout_s:g} s", source=source, retryable=True
            ) from exc
        except httpx.HTTPError as exc:
            raise map_httpx_error(exc, source) from exc
        except UrlRefused as exc:
            raise _disallowed(exc) from exc
        except UnresolvableHost as exc:
            raise MediaFetchFailed(exc.message, source=exc.source, retryable=exc.retryable) from exc

    async def _fetch_url(self, url: str, sink: _Sink) -> str:
        current: str | httpx.URL = url
        async with self._client() as client:
            for _hop in range(self.limits.max_redirects + 1):
                pinned = await self._guard.apin(current)
                source = pinned.source
                headers = {**pinned.headers, "Accept-Encoding": "identity"}
                request = client.build_request("GET", pinned.url, headers=headers, extensions=pinned.extensions)
                response = await client.send(request, stream=True)
                try:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        current = pinned.target.url.join(response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise _status_error(response.status_code, source)
                    if response.status_code != 200:
                        raise MediaFetchFailed(f"unexpected HTTP {response.status_code}", source=source)
                    declared = response.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > self.limits.max_bytes:
                        raise MediaTooLarge(
                            f"media is {declared} bytes; the limit is {self.limits.max_bytes}", source=source
                        )
                    # The declared length is only a hint: the cap is enforced on the bytes actually read.
                    async for chunk in response.aiter_bytes(_CHUNK):
                        sink.write(chunk)
                    return source
                finally:
                    await response.aclose()
        raise MediaFetchFailed(
            f"more than {self.limits.max_redirects} redirects", source=redact_url(url), retryable=False
        )

    # -- S3 -------------------------------------------------------------------------------------------------

    async def _s3_client(self) -> S3Client:
        """The client, built on first use in a thread: building one loads botocore's service model from disk, too
        slow for the loop that is following ComfyUI."""
        if self._s3 is None:
            config = s3_config(
                connect_timeout_s=self.limits.connect_timeout_s, read_timeout_s=self.limits.read_timeout_s
            )
            client = await new_s3_client_async(config)
            self._s3 = self._s3 or client  # another fetch may have built one meanwhile: keep the first
        return self._s3

    async def fetch_s3(self, uri: str, sink: _Sink) -> str:
        match = _S3_URI_RE.fullmatch(uri)
        if match is None:
            raise InvalidMedia("not an s3://bucket/key URI", source=uri[:200])
        bucket, key = match["bucket"], match["key"]
        if self.limits.buckets is not None and bucket not in self.limits.buckets:
            raise InvalidMedia(f"bucket {bucket!r} is not one this worker may read media from", source=uri)
        client = await self._s3_client()
        stop = threading.Event()

        def download() -> None:
            response = client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                length = response.get("ContentLength")
                if length is not None and length > self.limits.max_bytes:
                    raise MediaTooLarge(f"media is {length} bytes; the limit is {self.limits.max_bytes}", source=uri)
                while not stop.is_set():
                    chunk = body.read(_CHUNK)
                    if not chunk:
                        return
                    sink.write(chunk)
            finally:
                body.close()

        try:
            await asyncio.to_thread(download)
        except ClientError as exc:
            raise _s3_error(exc, uri) from exc
        except BotoCoreError as exc:
            raise MediaFetchFailed(f"S3 error fetching media: {exc}", source=uri, retryable=True) from exc
        finally:
            # A cancelled job must not leave a thread writing into a file that is about to be removed.
            stop.set()
        return uri

    async def list_s3(self, uri: str, max_keys: int) -> list[str]:
        """The keys under an ``s3://bucket/prefix/`` (at most ``max_keys``), with the same bucket check as reads."""
        match = _S3_URI_RE.fullmatch(uri)
        if match is None:
            raise InvalidMedia("not an s3://bucket/prefix/ URI", source=uri[:200])
        bucket, prefix = match["bucket"], match["key"]
        if self.limits.buckets is not None and bucket not in self.limits.buckets:
            raise InvalidMedia(f"bucket {bucket!r} is not one this worker may read media from", source=uri)
        client = await self._s3_client()

        def listing() -> list[str]:
            keys: list[str] = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
                if len(keys) >= max_keys:
                    return keys[:max_keys]
            return keys

        try:
            return await asyncio.to_thread(listing)
        except ClientError as exc:
            raise _s3_error(exc, uri) from exc
        except BotoCoreError as exc:
            raise MediaFetchFailed(f"S3 error listing media: {exc}", source=uri, retryable=True) from exc


def _s3_error(exc: ClientError, source: str) -> MediaFetchFailed:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "")) or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
    return MediaFetchFailed(
        f"S3 answered {code}: {error.get('Message', '')}".rstrip(": "),
        source=source,
        retryable=s3_error_retryable(exc),
    )


# ---------------------------------------------------------------------------------------------------------------
# Staging


@dataclass(frozen=True, slots=True)
class StagedMedia:
    #: The media item's name in the job (what parameters refer to).
    name: str
    #: What ComfyUI's loaders should be given: ``<job id>/<file name>``, relative to the input directory.
    comfy_name: str
    path: Path
    mime: str
    bytes: int
    sha256: str
    source: str


def _job_dir(input_dir: Path, job_id: str) -> Path:
    if not is_job_id(job_id):
        raise UnsafeName(f"job id {job_id!r} cannot name a folder")
    root = input_dir.resolve()
    path = root / job_id
    path.mkdir(parents=True, exist_ok=True)
    # A symlink planted at the job folder would redirect every write; refuse instead of following it.
    if path.is_symlink() or path.resolve().parent != root:
        raise UnsafeName(f"job folder {path} is not a plain folder inside {root}")
    return path


class InputStager:
    """Stages one job's media into ``<input_dir>/<job id>/``, atomically, and never outside that folder."""

    def __init__(self, input_dir: Path, job_id: str, fetcher: MediaFetcher) -> None:
        self.job_id = job_id
        self.folder = _job_dir(Path(input_dir), job_id)
        self._fetcher = fetcher
        self._taken: set[str] = set()

    @property
    def limits(self) -> MediaLimits:
        return self._fetcher.limits

    async def stage_item(self, item: MediaItem) -> StagedMedia:
        """Stage a validated ``contract.MediaItem`` (exactly one of url, base64, s3)."""
        try:
            if item.url is not None:
                return await self.stage_url(item.url, name=item.name)
            if item.base64 is not None:
                return await self.stage_base64(item.base64, name=item.name)
            if item.s3 is not None:
                return await self.stage_s3(item.s3, name=item.name)
            raise InvalidMedia(f"media {item.name!r} has no source")
        except MediaError as exc:
            exc.media_name = item.name
            raise

    async def stage_all(self, items: Iterable[MediaItem]) -> dict[str, StagedMedia]:
        """Stage every item concurrently; the first failure cancels the rest and is raised as itself (a
        :class:`MediaError`, not an exception group), so the handler maps it like any other."""
        items = list(items)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.stage_item(item)) for item in items]
        except BaseExceptionGroup as group_error:
            media = group_error.subgroup(MediaError)
            if media is None:
                raise
            first: BaseException = media
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        return {item.name: task.result() for item, task in zip(items, tasks, strict=True)}

    async def stage_url(self, url: str, name: str | None = None) -> StagedMedia:
        # Refuse before touching the disk; the fetcher checks again on every hop.
        try:
            check_url(url, allow_private=self.limits.allow_private)
        except UrlRefused as exc:
            raise _disallowed(exc) from exc
        derived = httpx.URL(url).path.rsplit("/", 1)[-1]
        return await self._stage(name, derived, redact_url(url), lambda sink: self._fetcher.fetch_url(url, sink))

    async def stage_s3(self, uri: str, name: str | None = None) -> StagedMedia:
        derived = uri.rsplit("/", 1)[-1]
        return await self._stage(name, derived, uri, lambda sink: self._fetcher.fetch_s3(uri, sink))

    async def stage_base64(self, data: str, name: str | None = None) -> StagedMedia:
        decoded = decode_base64(data, self.limits.max_bytes)

        async def write(sink: _Sink) -> str:
            for start in range(0, len(decoded.data), _CHUNK):
                sink.write(decoded.data[start : start + _CHUNK])
            return "base64"

        return await self._stage(name, "input", "base64", write)

    def _claim(self, name: str | None, derived: str) -> tuple[str, bool]:
        if name is not None:
            chosen = validate_name(name)
            if chosen in self._taken:
                raise InvalidMedia(f"media name {chosen!r} is used twice in this job")
            self._taken.add(chosen)
            return chosen, True
        base = sanitize_name(derived)
        chosen, n = base, 1
        while chosen in self._taken:
            stem, dot, ext = base.rpartition(".")
            chosen = f"{stem}-{n}.{ext}" if dot and stem else f"{base}-{n}"
            n += 1
        self._taken.add(chosen)
        return chosen, False

    async def _stage(
        self, name: str | None, derived: str, source: str, produce: Callable[[_Sink], Awaitable[str]]
    ) -> StagedMedia:
        try:
            chosen, explicit = self._claim(name, derived)
        except MediaError as exc:
            exc.source = exc.source or source
            raise
        temp = self.folder / f".{secrets.token_hex(8)}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(temp, flags, 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                sink = _Sink(fh, self.limits.max_bytes, source)
                final_source = await produce(sink)
            sniffed = sniff(sink.head)
            if sniffed is None or sniffed.category not in self.limits.categories:
                what = sniffed.mime if sniffed is not None else "unrecognised content"
                raise UnsupportedMedia(f"media {chosen!r} is {what}; accepted: images, audio, video, zip")
            named = mime_for_extension(chosen)
            if explicit and named is not None and named.split("/")[0] != sniffed.mime.split("/")[0]:
                raise UnsupportedMedia(f"media {chosen!r} is named like {named} but its bytes are {sniffed.mime}")
            file_name = with_extension(chosen, sniffed.ext)
            final = self.folder / file_name
            # Belt and braces: the name has no separators, but the guarantee is about the resolved path.
            if final.resolve().parent != self.folder.resolve():
                raise UnsafeName(f"media name {file_name!r} escapes the job folder")
            os.replace(temp, final)
        except MediaError as exc:
            exc.source = exc.source or source
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return StagedMedia(
            name=name if name is not None else chosen,
            comfy_name=f"{self.job_id}/{file_name}",
            path=final,
            mime=sniffed.mime,
            bytes=sink.size,
            sha256=sink.sha256.hexdigest(),
            source=final_source,
        )


# ---------------------------------------------------------------------------------------------------------------
# Cleanup


@dataclass
class JobFiles:
    """The files one job leaves on the worker: its staged input folder and every output file it produced."""

    input_folder: Path
    roots: tuple[Path, ...]
    outputs: list[Path] = field(default_factory=list)

    def track(self, path: Path) -> None:
        """Remember an output (or temp) file for removal; only files inside ``roots`` are ever removed."""
        self.outputs.append(path)

    def remove(self) -> list[str]:
        """Remove everything tracked; returns the problems met instead of raising (cleanup must not mask errors)."""
        problems: list[str] = []
        roots = [r.resolve() for r in self.roots]
        for path in self.outputs:
            resolved = path.resolve()
            if not any(resolved.is_relative_to(root) for root in roots):
                problems.append(f"not removing {path}: outside the output folders")
                continue
            try:
                resolved.unlink(missing_ok=True)
            except OSError as exc:
                problems.append(f"cannot remove {path}: {exc}")
        self.outputs.clear()
        if self.input_folder.exists():
            try:
                shutil.rmtree(self.input_folder)
            except OSError as exc:
                problems.append(f"cannot remove {self.input_folder}: {exc}")
        return problems


@contextlib.asynccontextmanager
async def job_files(input_dir: Path, job_id: str, output_roots: Iterable[Path] = ()) -> AsyncIterator[JobFiles]:
    """``async with job_files(input_dir, job_id, [output_dir, temp_dir]) as files:`` ... the job's input folder and
    tracked outputs are removed on the way out, whatever happened (errors, cancellation)."""
    if not is_job_id(job_id):
        raise UnsafeName(f"job id {job_id!r} cannot name a folder")
    files = JobFiles(input_folder=Path(input_dir) / job_id, roots=tuple(output_roots))
    try:
        yield files
    finally:
        # Shielded so a cancellation arriving during cleanup still leaves nothing behind.
        await asyncio.shield(asyncio.to_thread(files.remove))
