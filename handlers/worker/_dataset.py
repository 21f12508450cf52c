"""A LoRA training dataset, the I/O half: fetch it (a zip inline, by URL or from S3; an S3 prefix; a list of URLs,
each through the worker's media fetcher and its SSRF guard), unpack it under ``<input>/<job id>/dataset/`` after
checking the archive's directory, write the trigger word into every caption, decode every image, and hand the
verdict to the pure checks (:func:`handlers.workflow.check_dataset`). Over HTTP the files are then uploaded into
the same subfolder of ComfyUI's input folder. The job's input folder goes with the job (``JobFiles``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final

from PIL import Image, UnidentifiedImageError

from handlers.contract import Dataset, Problem
from handlers.worker._media import InvalidMedia
from handlers.worker._staging import InputStager, MediaFetcher, _Sink
from handlers.workflow import (
    DATASET_PARAM,
    DatasetInvalid,
    DatasetLimits,
    DatasetReport,
    ImageFacts,
    ZipMember,
    caption_with_trigger,
    check_dataset,
    dataset_file,
    dataset_folder,
    plan_zip,
)

if TYPE_CHECKING:
    from handlers.worker._folders import JobFolders

__all__ = ["StagedDataset", "stage_dataset"]

logger = logging.getLogger("handlers.worker.dataset")

_IMAGES: Final = frozenset({".png", ".jpg", ".jpeg", ".webp"})
_FETCHES: Final = 8
_CHUNK: Final = 1024 * 1024
_S3_PREFIX: Final = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>.*)")


@dataclass(frozen=True)
class StagedDataset:
    folder: str
    """The dataset folder as ComfyUI's loaders name it (``<job id>/dataset``)."""
    path: Path
    report: DatasetReport
    trigger: str | None


async def stage_dataset(
    dataset: Dataset,
    *,
    folders: JobFolders,
    job_id: str,
    fetcher: MediaFetcher,
    trigger: str | None,
    limits: DatasetLimits | None = None,
    resolution: int | None = None,
) -> StagedDataset:
    """Fetch, unpack, caption and check ``dataset`` into ``<input>/<job id>/dataset/``. Raises
    :class:`DatasetInvalid` (every hard problem) or a :class:`MediaError` (fetching failed)."""
    limits = limits or DatasetLimits()
    stager = InputStager(folders.input_dir, job_id, fetcher)
    root = stager.folder / DATASET_PARAM
    await asyncio.to_thread(root.mkdir, exist_ok=True)
    if dataset.zip_base64 is not None:
        archive = await stager.stage_base64(dataset.zip_base64, name="dataset.zip")
    elif dataset.zip_url is not None:
        archive = await stager.stage_url(dataset.zip_url, name="dataset.zip")
    elif dataset.s3 is not None and dataset.s3_prefix is None:
        archive = await stager.stage_s3(dataset.s3, name="dataset.zip")
    else:
        archive = None
    if archive is not None:
        if archive.mime != "application/zip":
            raise InvalidMedia(f"the dataset is {archive.mime}, not a zip", source=archive.source)
        await asyncio.to_thread(_unzip, archive.path, root, limits)
        await asyncio.to_thread(archive.path.unlink)
    elif dataset.s3_prefix is not None:
        await _fetch_prefix(dataset.s3_prefix, root, fetcher, limits)
    else:
        assert dataset.urls is not None
        await _fetch_urls(dataset.urls, root, fetcher, limits)
    images, orphans = await asyncio.to_thread(_inspect, root)
    report = check_dataset(images, orphans, limits, resolution=resolution)
    if trigger is None:
        report.warnings.append("no trigger word (give dataset.trigger_word or params.trigger_word): captions as given")
    await asyncio.to_thread(_write_captions, root, images, trigger or "")
    if folders.inputs_over_http:
        await _hand_over(folders, root, job_id)
    logger.info(
        "dataset staged",
        extra={
            "images": report.images,
            "captioned": report.captioned,
            "bytes": report.total_bytes,
            "shots": report.shots,
        },
    )
    return StagedDataset(folder=dataset_folder(job_id), path=root, report=report, trigger=trigger)


# ------------------------------------------------------------------------------------------------------- sources


def _unzip(archive: Path, root: Path, limits: DatasetLimits) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            plan = plan_zip(
                [
                    ZipMember(i.filename, i.file_size, i.compress_size, i.is_dir())
                    for i in infos[: limits.max_files + 1]
                ],
                limits,
            )
            for info in infos:
                target = plan.get(info.filename)
                if target is None:
                    continue
                # The directory's sizes are claims: the bytes actually unpacked are counted too.
                _copy_capped(zf.open(info), root / target, min(info.file_size, limits.max_file_bytes), info.filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise DatasetInvalid([Problem(path="input.dataset", message=f"is not a readable zip: {exc}")]) from exc


def _copy_capped(source: Any, target: Path, cap: int, name: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with source, open(target, "xb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > cap:
                raise DatasetInvalid([Problem(path=f"input.dataset[{name!r}]", message="unpacks larger than declared")])
            out.write(chunk)


async def _fetch_into(root: Path, relative: str, fetch: Any, limits: DatasetLimits, source: str) -> None:
    target = root / relative
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    fd = await asyncio.to_thread(os.open, target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "wb") as fh:
        await fetch(_Sink(fh, limits.max_file_bytes, source))


def _targets(names: list[tuple[str, str]], limits: DatasetLimits) -> list[tuple[str, str]]:
    """(source, file name) -> (source, path in the dataset folder), after the same name checks as an archive's."""
    if len(names) > limits.max_files:
        raise DatasetInvalid(
            [Problem(path="input.dataset", message=f"names {len(names)} files; at most {limits.max_files}")]
        )
    plan, problems, seen = [], [], set()
    for source, name in names:
        try:
            kept = dataset_file(name)
        except ValueError as exc:
            problems.append(Problem(path=f"input.dataset[{name!r}]", message=str(exc)))
            continue
        if kept is None:
            continue
        if kept.path.lower() in seen:
            problems.append(Problem(path=f"input.dataset[{name!r}]", message="named twice"))
            continue
        seen.add(kept.path.lower())
        plan.append((source, kept.path))
    if problems:
        raise DatasetInvalid(problems)
    return plan


async def _gather_capped(jobs: list[Any]) -> None:
    slots = asyncio.Semaphore(_FETCHES)

    async def one(job: Any) -> None:
        async with slots:
            await job()

    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(one(job))
    except BaseExceptionGroup as errors:
        first: BaseException = errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def _fetch_urls(urls: list[str], root: Path, fetcher: MediaFetcher, limits: DatasetLimits) -> None:
    plan = _targets([(url, PurePosixPath(url.split("?", 1)[0]).name) for url in urls], limits)
    await _gather_capped(
        [
            lambda url=url, rel=rel: _fetch_into(root, rel, lambda sink: fetcher.fetch_url(url, sink), limits, url)
            for url, rel in plan
        ]
    )


async def _fetch_prefix(uri: str, root: Path, fetcher: MediaFetcher, limits: DatasetLimits) -> None:
    match = _S3_PREFIX.fullmatch(uri)
    if match is None:
        raise InvalidMedia("not an s3://bucket/prefix/ URI", source=uri[:200])
    keys = await fetcher.list_s3(uri, limits.max_files + 1)
    prefix = match["prefix"]
    plan = _targets([(f"s3://{match['bucket']}/{key}", key[len(prefix) :]) for key in keys], limits)
    if not plan:
        raise DatasetInvalid([Problem(path="input.dataset.s3", message="no images under this prefix")])
    await _gather_capped(
        [
            lambda src=src, rel=rel: _fetch_into(root, rel, lambda sink: fetcher.fetch_s3(src, sink), limits, src)
            for src, rel in plan
        ]
    )


# ------------------------------------------------------------------------------------------------------ checking


def _inspect(root: Path) -> tuple[list[ImageFacts], list[str]]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in _IMAGES]
    stems = {p.with_suffix("") for p in images}
    orphans = [str(p.relative_to(root)) for p in files if p.suffix.lower() == ".txt" and p.with_suffix("") not in stems]
    facts = []
    for path in images:
        caption_path = path.with_suffix(".txt")
        caption = caption_path.read_text(encoding="utf-8", errors="replace") if caption_path.is_file() else None
        rel = str(path.relative_to(root))
        size = path.stat().st_size
        try:
            with Image.open(path) as image:
                width, height = image.size
                image.verify()  # the whole stream, not only the header
            facts.append(ImageFacts(rel, size, width, height, caption=caption))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            facts.append(ImageFacts(rel, size, error=str(exc) or type(exc).__name__, caption=caption))
    return facts, orphans


def _write_captions(root: Path, images: list[ImageFacts], trigger: str) -> None:
    for image in images:
        caption = caption_with_trigger(image.caption or "", trigger)
        (root / image.path).with_suffix(".txt").write_text(caption, encoding="utf-8")


async def _hand_over(folders: JobFolders, root: Path, job_id: str) -> None:
    files = await asyncio.to_thread(lambda: sorted(p for p in root.rglob("*") if p.is_file()))
    for path in files:
        relative = path.relative_to(root)
        subfolder = "/".join([dataset_folder(job_id), *relative.parent.parts])
        data = await asyncio.to_thread(path.read_bytes)
        await folders.comfy.upload_image(path.name, data, subfolder=subfolder, overwrite=True)
