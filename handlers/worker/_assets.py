"""Character pack assets on the worker, the I/O half: fetch on demand, verify, cache by content, place for ComfyUI.

A job for a character leases the assets its graph uses (:func:`handlers.workflow.assets_used`). Each is fetched once
(by URL through the SSRF guard, or from S3, with the media fetcher), checked against the manifest's sha256 and size,
and kept as ``<cache>/blobs/<sha256>`` under the byte budget of :class:`CachePolicy` (least recently used first out,
never what a running or queued job leases). Concurrent leases of one asset share its single download.

Placing, per kind: a LoRA is linked into ComfyUI's models folder as ``loras/relay-assets/<sha256[:16]>/<file>``
(content-addressed: two versions never collide, a new one never replaces a file a queued prompt names); reference
images and voice samples are copied into the job's input folder as ``<job id>/character/<file>`` (handed to ComfyUI
over HTTP when it is remote) and go with the job's files. The graph is rewritten to name the placed files.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from handlers.contract import ErrorCode, JobError
from handlers.worker._asset_cache import Admission, CacheFull, CachePolicy
from handlers.worker._config import WorkerConfig
from handlers.worker._media import MediaError, mime_for_extension
from handlers.worker._staging import MediaFetcher, MediaLimits, StagedMedia, _Sink
from handlers.workflow import (
    AssetBaseMissing,
    AssetKind,
    BoundWorkflow,
    CharacterProfile,
    PackAsset,
    PackEntry,
    asset_location,
    assets_used,
    with_placed_assets,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["AssetError", "AssetSettings", "Assets", "JobAssets", "asset_settings"]

logger = logging.getLogger("handlers.worker.assets")

#: The folder, inside a ComfyUI model folder, that holds placed pack models.
PLACED_FOLDER: Final = "relay-assets"
_SHA_FILE = re.compile(r"[0-9a-f]{64}")


class AssetError(Exception):
    """A pack asset could not be provisioned (``asset_fetch_failed``); ``retryable`` when fetching again may help."""

    code = ErrorCode.ASSET_FETCH_FAILED

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def to_job_error(self, job_id: str | None = None) -> JobError:
        return JobError(code=self.code, message=self.message, retryable=self.retryable, job_id=job_id)


@dataclass(frozen=True, slots=True)
class AssetSettings:
    cache_dir: Path
    budget_bytes: int
    #: ``RELAY_ASSET_BASE_URL``: what ``${RELAY_ASSET_BASE_URL}`` in a manifest stands for.
    base_url: str | None = None
    #: ComfyUI's models folder on this machine; ``None``: pack models cannot be placed.
    models_dir: Path | None = None
    allow_private: bool = False


def asset_settings(config: WorkerConfig) -> AssetSettings:
    """The cache's settings from the worker's configuration."""
    scratch = config.scratch_dir or Path(tempfile.gettempdir())
    return AssetSettings(
        cache_dir=config.asset_cache_dir or scratch / "comfy-relay-assets",
        budget_bytes=config.asset_cache_bytes,
        base_url=config.asset_base_url,
        models_dir=config.comfyui_models_dir,
        allow_private=config.allow_private_urls,
    )


def _link(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s content: a hard link (no copy), a symbolic one across file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
    try:
        os.link(source, temp)
    except OSError:
        os.symlink(source, temp)
    os.replace(temp, target)


class Assets:
    """The worker's asset cache (one per process). ``fetcher`` is injectable; ``None`` builds a guarded one."""

    def __init__(
        self, settings: AssetSettings, *, fetcher: MediaFetcher | None = None, s3_client: S3Client | None = None
    ) -> None:
        self.settings = settings
        self.policy = CachePolicy(settings.budget_bytes)
        limits = MediaLimits(
            max_bytes=settings.budget_bytes,
            read_timeout_s=60.0,
            total_timeout_s=3600.0,
            allow_private=settings.allow_private,
            categories=frozenset(),
        )
        self._fetcher = fetcher or MediaFetcher(limits, s3_client=s3_client)
        self._downloads: dict[str, asyncio.Task[None]] = {}
        self._opened = False
        self._lock = asyncio.Lock()

    @property
    def blobs(self) -> Path:
        return self.settings.cache_dir / "blobs"

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256

    async def _open(self) -> None:
        async with self._lock:
            if not self._opened:
                await asyncio.to_thread(self._adopt)
                self._opened = True

    def _adopt(self) -> None:
        """Keep what an earlier process verified (oldest first); drop partial downloads and orphaned placements."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        partial = self.settings.cache_dir / "partial"
        shutil.rmtree(partial, ignore_errors=True)
        found = [p for p in self.blobs.iterdir() if _SHA_FILE.fullmatch(p.name) and p.is_file()]
        for path in sorted(found, key=lambda p: p.stat().st_mtime):
            self.policy.adopt(path.name, path.stat().st_size)
        kept = {p.name[:16] for p in found}
        for placed in self._placements("*"):
            if placed.name not in kept:
                shutil.rmtree(placed, ignore_errors=True)

    def _placements(self, prefix: str) -> list[Path]:
        models = self.settings.models_dir
        return list(models.glob(f"*/{PLACED_FOLDER}/{prefix}")) if models is not None and models.is_dir() else []

    def _evict(self, sha256: str) -> None:
        for placed in self._placements(sha256[:16]):
            shutil.rmtree(placed, ignore_errors=True)
        self.blob(sha256).unlink(missing_ok=True)
        logger.info("asset cache: evicted %s", sha256)

    async def lease(self, asset: PackAsset) -> Path:
        """The verified file of ``asset``, fetched if absent, leased until :meth:`release`; else
        :class:`AssetError`."""
        await self._open()
        try:
            location = asset_location(asset.url, self.settings.base_url)
        except AssetBaseMissing as exc:
            raise AssetError(f"asset {asset.file}: {exc}") from exc
        try:
            admission, victims = self.policy.lease(asset.sha256, asset.size)
        except CacheFull as exc:
            raise AssetError(f"asset {asset.file}: {exc} (RELAY_ASSET_CACHE_BYTES)") from exc
        try:
            for sha in victims:
                await asyncio.to_thread(self._evict, sha)
            if admission is Admission.DOWNLOAD:
                task = asyncio.create_task(self._download(asset, location), name=f"asset {asset.sha256[:12]}")
                self._downloads[asset.sha256] = task
                task.add_done_callback(functools.partial(self._forget_download, asset.sha256))
            if admission is not Admission.HIT:
                download = self._downloads.get(asset.sha256)
                if download is not None:
                    # Shielded: a cancelled job stops waiting, the download goes on for the others.
                    await asyncio.shield(download)
            if not self.policy.holds(asset.sha256):
                raise AssetError(f"asset {asset.file}: its download failed", retryable=True)
        except BaseException:
            self.policy.release(asset.sha256)
            raise
        return self.blob(asset.sha256)

    def release(self, sha256: str) -> None:
        self.policy.release(sha256)

    def _forget_download(self, sha256: str, _task: asyncio.Task[None]) -> None:
        self._downloads.pop(sha256, None)

    async def _download(self, asset: PackAsset, location: str) -> None:
        source = location.split("?", 1)[0]
        partial = self.settings.cache_dir / "partial"
        temp = partial / f"{asset.sha256}.{secrets.token_hex(4)}"
        try:
            await asyncio.to_thread(partial.mkdir, parents=True, exist_ok=True)
            with temp.open("wb") as fh:
                sink = _Sink(fh, asset.size, source)
                try:
                    if location.startswith("s3://"):
                        await self._fetcher.fetch_s3(location, sink)
                    else:
                        await self._fetcher.fetch_url(location, sink)
                except MediaError as exc:
                    raise AssetError(
                        f"asset {asset.file} from {source}: {exc.message}", retryable=exc.retryable
                    ) from exc
            digest = sink.sha256.hexdigest()
            if (digest, sink.size) != (asset.sha256, asset.size):
                raise AssetError(
                    f"asset {asset.file} from {source} is not the file the pack names: sha256 {digest} "
                    f"({sink.size} bytes), expected {asset.sha256} ({asset.size} bytes); it was not used"
                )
            await asyncio.to_thread(os.replace, temp, self.blob(asset.sha256))
            self.policy.ready(asset.sha256)
            logger.info("asset cache: fetched %s (%d bytes) from %s", asset.file, asset.size, source)
        except BaseException as exc:
            self.policy.failed(asset.sha256)
            if isinstance(exc, AssetError):
                logger.warning("asset cache: %s", exc.message)
            raise
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()

    def place_model(self, entry: PackEntry) -> tuple[str, bool]:
        """Link a leased model asset into ComfyUI's models folder: the name its loader takes, and whether the file
        is new there (ComfyUI's catalogue lists it from now on)."""
        folder = entry.kind.model_folder
        models = self.settings.models_dir
        assert folder is not None
        if models is None:
            raise AssetError(
                f"{entry.path} {entry.asset.file}: this worker cannot place model files (set COMFYUI_MODELS_DIR to "
                "ComfyUI's models folder on this machine)"
            )
        name = f"{PLACED_FOLDER}/{entry.asset.sha256[:16]}/{entry.asset.file}"
        target = models / folder / name
        if target.is_file():
            return name, False
        _link(self.blob(entry.asset.sha256), target)
        return name, True

    def job(self, job_id: str) -> JobAssets:
        return JobAssets(self, job_id)


@dataclass
class JobAssets:
    """One job's leases: :meth:`prepare` before validation, :meth:`stage` with its inputs, :meth:`release` at its
    end."""

    assets: Assets
    job_id: str
    leased: list[str] = field(default_factory=list)
    inputs: list[PackEntry] = field(default_factory=list)

    async def prepare(self, profile: CharacterProfile, bound: BoundWorkflow) -> tuple[BoundWorkflow, bool]:
        """``bound`` naming the placed files of the assets it uses (fetched and leased now), and whether a model
        file was newly placed (the live catalogue must be read again)."""
        used = assets_used(profile, bound)
        if not used:
            return bound, False
        results = await asyncio.gather(*(self.assets.lease(e.asset) for e in used), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        pairs = zip(used, results, strict=True)
        self.leased.extend(e.asset.sha256 for e, r in pairs if not isinstance(r, BaseException))
        if failures:
            raise failures[0]
        placed: dict[str, str] = {}
        new = False
        for entry in used:
            if entry.kind.model_folder is not None:
                placed[entry.asset.file], fresh = await asyncio.to_thread(self.assets.place_model, entry)
                new = new or fresh
            else:
                self.inputs.append(entry)
                placed[entry.asset.file] = f"{self.job_id}/character/{entry.asset.file}"
        return with_placed_assets(bound, placed), new

    async def stage(self, input_dir: Path) -> Mapping[str, StagedMedia]:
        """Copy the input assets into ``<input_dir>/<job id>/character/`` (a copy: ComfyUI may write its input
        folder, and the cache's file must stay what was verified)."""
        staged: dict[str, StagedMedia] = {}
        for entry in self.inputs:
            asset = entry.asset
            target = input_dir / self.job_id / "character" / asset.file
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.copyfile, self.assets.blob(asset.sha256), target)
            fallback = "audio/wav" if entry.kind is AssetKind.VOICE_SAMPLE else "image/png"
            mime = mime_for_extension(asset.file) or fallback
            staged[f"character:{asset.file}"] = StagedMedia(
                name=asset.file,
                comfy_name=f"{self.job_id}/character/{asset.file}",
                path=target,
                mime=mime,
                bytes=asset.size,
                sha256=asset.sha256,
                source=asset.url,
            )
        return staged

    def release(self) -> None:
        for sha in self.leased:
            self.assets.release(sha)
        self.leased.clear()
