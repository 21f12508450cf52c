"""Model fetcher: put a profile's model files under a models directory, each verified before it is used.

For every file, concurrently (bounded): present and matching → skipped (a network volume filled earlier);
else download to ``.<file>.part`` beside the target, resuming an interrupted transfer with an HTTP range request;
hash while writing; move into place only when the sha256 (and size) match the lock, else delete and report.
Transient failures (connection drops, 5xx, 429) retry with backoff and resume; 4xx fail at once. Tokens come from
the environment (``token_env`` of the pin, else ``HF_TOKEN`` for Hugging Face URLs) and are never logged.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import os
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import httpx

from handlers.image._lock import ModelPin
from handlers.image._synthetic import GENERATORS

__all__ = [
    "FetchOptions",
    "FetchProgress",
    "FetchResult",
    "FetchStatus",
    "fetch_models",
    "sha256_file",
]

_CHUNK: Final = 1024 * 1024
_HF_HOSTS: Final = ("huggingface.co", "hf.co")


class FetchStatus(enum.StrEnum):
    DOWNLOADED = "downloaded"
    PRESENT = "present"
    GENERATED = "generated"
    #: Not fetched by request (``generated_only``): the network volume is expected to have it.
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FetchResult:
    model: ModelPin
    status: FetchStatus
    bytes: int = 0
    error: str | None = None
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """Limits are finite: parallel files, attempts per file, backoff, and per-request timeouts."""

    concurrency: int = 4
    attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    connect_timeout_s: float = 20.0
    read_timeout_s: float = 60.0
    #: Fetch models whose lock entry has no sha256 (their ``unverified`` reason is printed).
    allow_unverified: bool = False
    #: Only make the locally generated models (the image's default when models live on the network volume).
    generated_only: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


class FetchProgress(Protocol):
    def start(self, model: ModelPin, total: int | None, done: int) -> None: ...
    def advance(self, model: ModelPin, count: int) -> None: ...
    def finish(self, result: FetchResult) -> None: ...


class _NoProgress:
    def start(self, model: ModelPin, total: int | None, done: int) -> None:
        pass

    def advance(self, model: ModelPin, count: int) -> None:
        pass

    def finish(self, result: FetchResult) -> None:
        pass


class _Retryable(Exception):
    """A transfer failed in a way another attempt may fix (the partial file is kept for resuming)."""


class _Fatal(Exception):
    """A failure no retry fixes (a digest mismatch, no usable source)."""


class _SourceFailed(Exception):
    """One URL cannot serve the file (404, 401, retries exhausted): the next mirror may."""


def sha256_file(path: Path, *, prefix_bytes: int | None = None) -> tuple[str, int]:
    """sha256 and size of a file (or of its first ``prefix_bytes``)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while prefix_bytes is None or size < prefix_bytes:
            want = _CHUNK if prefix_bytes is None else min(_CHUNK, prefix_bytes - size)
            chunk = handle.read(want)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _token_for(model: ModelPin, url: str, environ: Mapping[str, str]) -> str | None:
    if model.token_env:
        return environ.get(model.token_env) or None
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in _HF_HOSTS):
        return environ.get("HF_TOKEN") or environ.get("HUGGING_FACE_HUB_TOKEN") or None
    return None


def _matches(model: ModelPin, path: Path, *, allow_unverified: bool) -> bool:
    """Whether an existing file is the locked one. Without a sha256 only the size (when known) can be checked."""
    if not path.is_file():
        return False
    if model.sha256 is None:
        return allow_unverified and (model.size is None or path.stat().st_size == model.size)
    if model.size is not None and path.stat().st_size != model.size:
        return False
    return sha256_file(path)[0] == model.sha256


class _Fetcher:
    def __init__(self, dest: Path, options: FetchOptions, client: httpx.AsyncClient, progress: FetchProgress) -> None:
        self.dest = dest
        self.options = options
        self.client = client
        self.progress = progress
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def fetch(self, model: ModelPin) -> FetchResult:
        target = self.dest / model.folder / model.file
        try:
            if model.generator is None and self.options.generated_only:
                return FetchResult(model, FetchStatus.SKIPPED)
            if model.sha256 is None and not self.options.allow_unverified:
                raise _Fatal(
                    f"the lock has no sha256 for it ({model.unverified}); refusing an unverified download "
                    "(pass --allow-unverified to accept it)"
                )
            if await asyncio.to_thread(_matches, model, target, allow_unverified=self.options.allow_unverified):
                return FetchResult(model, FetchStatus.PRESENT, bytes=target.stat().st_size)
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(f".{target.name}.part")
            if model.generator is not None:
                return await asyncio.to_thread(self._generate, model, part, target)
            return await self._download(model, part, target)
        except _Fatal as exc:
            return FetchResult(model, FetchStatus.FAILED, error=str(exc))
        except OSError as exc:
            return FetchResult(model, FetchStatus.FAILED, error=f"cannot write {target}: {exc.strerror or exc}")

    def _generate(self, model: ModelPin, part: Path, target: Path) -> FetchResult:
        make = GENERATORS.get(model.generator or "")
        if make is None:
            raise _Fatal(f"unknown generator {model.generator!r}")
        make(part)
        self._verify_and_place(model, part, target, *sha256_file(part))
        return FetchResult(model, FetchStatus.GENERATED, bytes=target.stat().st_size)

    def _verify_and_place(self, model: ModelPin, part: Path, target: Path, digest: str, size: int) -> None:
        problem = None
        if model.size is not None and size != model.size:
            problem = f"size mismatch: expected {model.size} bytes, got {size}"
        elif model.sha256 is not None and digest != model.sha256:
            problem = f"sha256 mismatch: expected {model.sha256}, got {digest}"
        if problem:
            part.unlink(missing_ok=True)
            raise _Fatal(f"{problem}; the download was deleted")
        os.replace(part, target)

    async def _download(self, model: ModelPin, part: Path, target: Path) -> FetchResult:
        """From ``url``, then each mirror (same sha256) when a source fails for good; a digest mismatch is final."""
        errors = []
        for url in (model.url, *model.mirrors):
            assert url is not None
            try:
                return await self._download_from(model, url, part, target)
            except _SourceFailed as exc:
                errors.append(str(exc))
        raise _Fatal("; ".join(errors))

    async def _download_from(self, model: ModelPin, url: str, part: Path, target: Path) -> FetchResult:
        resumed = False
        last_error = "no attempt made"
        for attempt in range(1, self.options.attempts + 1):
            try:
                resumed = await self._transfer(model, url, part) or resumed
                digest, size = await asyncio.to_thread(sha256_file, part)
                await asyncio.to_thread(self._verify_and_place, model, part, target, digest, size)
                return FetchResult(model, FetchStatus.DOWNLOADED, bytes=size, resumed=resumed)
            except _Retryable as exc:
                last_error = str(exc)
                if attempt < self.options.attempts:
                    delay = min(self.options.backoff_cap_s, self.options.backoff_base_s * 2 ** (attempt - 1))
                    await self.sleep(delay)
        raise _SourceFailed(f"gave up after {self.options.attempts} attempts: {last_error}")

    async def _transfer(self, model: ModelPin, url: str, part: Path) -> bool:
        """One request: append to the partial file from where it ends. Returns whether it resumed."""
        have = await asyncio.to_thread(_size_of, part)
        if model.size is not None and have > model.size:
            await asyncio.to_thread(part.unlink)
            have = 0
        headers = {"Accept-Encoding": "identity"}
        token = _token_for(model, url, self.options.environ)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            async with self.client.stream("GET", url, headers=headers) as response:
                if response.status_code == 416 and have:
                    return True  # the partial file is already whole: verify it
                if response.status_code in (401, 403):
                    hint = " (set the token in the environment)" if not token else " (the token was refused)"
                    raise _SourceFailed(f"HTTP {response.status_code} from {_safe_url(url)}{hint}")
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(f"HTTP {response.status_code} from {_safe_url(url)}")
                if response.status_code not in (200, 206):
                    raise _SourceFailed(f"HTTP {response.status_code} from {_safe_url(url)}")
                resuming = response.status_code == 206 and have > 0
                if resuming and not response.headers.get("content-range", "").startswith(f"bytes {have}-"):
                    raise _Retryable("the server answered the range request with another range")
                if not resuming:
                    have = 0
                total = _total(response, have)
                self.progress.start(model, total, have)
                written = have
                with await asyncio.to_thread(part.open, "ab" if resuming else "wb") as out:
                    async for chunk in response.aiter_raw():  # as received: a drop keeps what arrived
                        await asyncio.to_thread(out.write, chunk)
                        written += len(chunk)
                        self.progress.advance(model, len(chunk))
                if total is not None and written < total:
                    raise _Retryable(f"the transfer ended early at {written} of {total} bytes")
                return resuming
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__} while downloading {_safe_url(url)}") from exc


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _total(response: httpx.Response, have: int) -> int | None:
    length = response.headers.get("content-length")
    return have + int(length) if length and length.isdigit() else None


def _safe_url(url: str) -> str:
    """The URL without its query (signed URLs carry credentials there) and without user info."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


async def fetch_models(
    models: Sequence[ModelPin],
    dest: Path,
    *,
    options: FetchOptions | None = None,
    client: httpx.AsyncClient | None = None,
    progress: FetchProgress | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> list[FetchResult]:
    """Fetch every model into ``dest/<folder>/<file>``; one result per model, in the given order. Never raises for
    a single file's failure: the caller reads the results (and exits non-zero when any failed)."""
    options = options or FetchOptions()
    owned = client is None
    if client is None:
        timeout = httpx.Timeout(options.read_timeout_s, connect=options.connect_timeout_s)
        client = httpx.AsyncClient(follow_redirects=True, timeout=timeout, trust_env=True)
    fetcher = _Fetcher(dest, options, client, progress or _NoProgress())
    if sleep is not None:
        fetcher.sleep = sleep
    gate = asyncio.Semaphore(options.concurrency)

    async def one(model: ModelPin) -> FetchResult:
        async with gate:
            result = await fetcher.fetch(model)
        fetcher.progress.finish(result)
        return result

    try:
        return list(await asyncio.gather(*(one(m) for m in models)))
    finally:
        if owned:
            await client.aclose()
