"""Publishing outputs as they appear: one node's ui dict in, uploaded and described ``OutputItem``s out.

Call :meth:`OutputPublisher.publish_node` for each ``executed`` message (the first image is visible while the rest
still runs), then :meth:`OutputPublisher.commit` with the finished ``JobResult``: it writes ``manifest.json`` last.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from handlers.contract import JobResult, OutputItem, OutputKind, OutputOptions, OutputRole, Variation
from handlers.worker._media import SNIFF_BYTES, mime_for_extension, sniff
from handlers.worker._outputs import (
    ComfyDirs,
    FileRef,
    InlineBudget,
    OutputPathError,
    collect_node_outputs,
    describe_file,
    resolve_ref,
)
from handlers.worker._staging import JobFiles
from handlers.worker._storage import (
    MANIFEST_NAME,
    OutputNameCollision,
    OutputStore,
    StoredObject,
    UploadFailed,
    convert_audio,
    convert_image,
    object_key,
)
from handlers.worker._strip_metadata import strip_metadata
from handlers.workflow import OutputNamer

__all__ = ["OutputPublisher", "stored_result"]


def _content_type(path: Path) -> str:
    """The MIME type :func:`describe_file` will report, from the first bytes only (the upload cannot wait for the
    full read)."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    sniffed = sniff(head)
    return (sniffed.mime if sniffed is not None else mime_for_extension(path.name)) or "application/octet-stream"


class OutputPublisher:
    """Uploads one job's outputs node by node and writes the manifest at the end.

    ``files`` (from ``job_files``) gets every output file tracked so the worker removes it afterwards. A file
    reported twice (a cached node re-announced, or the same ui dict seen in ``executed`` and ``/history``) is
    published once.
    """

    def __init__(
        self,
        store: OutputStore,
        job_id: str,
        dirs: ComfyDirs,
        options: OutputOptions | None = None,
        *,
        files: JobFiles | None = None,
        work_dir: Path | None = None,
        namer: OutputNamer | None = None,
        variation_of: Callable[[str], Variation | None] | None = None,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.dirs = dirs
        self.options = options or OutputOptions()
        self._files = files
        self._work_dir = work_dir
        self._budget = InlineBudget(self.options.inline_base64_max_bytes)
        self._done: set[tuple[str, str, str, str]] = set()
        self._names: dict[str, set[str]] = {}
        self._assigned: dict[tuple[str, str, str, str], str] = {}
        #: ``output.name``: the key of each output under the prefix, and which file holds each key.
        self._namer = namer
        self._keys: dict[str, tuple[str, str, str, str]] = {}
        self._variation_of = variation_of
        self.items: list[OutputItem] = []
        #: sha256 of a published file -> the file ComfyUI wrote, for QA and previews while the job runs.
        self.paths: dict[str, Path] = {}

    async def publish_node(
        self, node_id: str, ui: dict[str, Any], node_title: str | None = None, *, keep_temp: bool = False
    ) -> list[OutputItem]:
        """Upload every new file of one node's ui dict and return its items (texts included). ``keep_temp``: its
        temp files are results too (a training loss curve), whatever ``include_temp`` says."""
        collected = collect_node_outputs(ui, node_id, node_title, include_temp=True)
        if self._files is not None:
            # Temp previews are removed with the job too, even when they are not returned.
            for ref in collected.files:
                with contextlib.suppress(OutputPathError):
                    self._files.track(resolve_ref(ref, self.dirs))
        new: list[OutputItem] = [
            OutputItem(node_id=node_id, node_title=node_title, kind=OutputKind.TEXT, text=t.text)
            for t in collected.texts
        ]
        for index, ref in enumerate(collected.files):
            if ref.identity in self._done or (ref.temp and not (self.options.include_temp or keep_temp)):
                continue
            new.append(await self._publish_file(ref, index))
            self._done.add(ref.identity)
        self.items.extend(new)
        return new

    def _stored_name(self, ref: FileRef, name: str) -> str:
        # Stable per file, so a retried upload reuses its key instead of taking a new "-1" one.
        if ref.identity in self._assigned:
            return self._assigned[ref.identity]
        taken = self._names.setdefault(ref.node_id, set())
        candidate, n = name, 1
        while candidate in taken:
            stem, dot, ext = name.rpartition(".")
            candidate = f"{stem}-{n}.{ext}" if dot and stem else f"{name}-{n}"
            n += 1
        taken.add(candidate)
        self._assigned[ref.identity] = candidate
        return candidate

    def _named_key(self, ref: FileRef, index: int, name: str) -> str | None:
        """The key ``output.name`` gives this file, refused when another file of the job already has it."""
        if self._namer is None:
            return None
        key = self._namer.key(ref.node_id, index, PurePosixPath(name).suffix.lstrip(".").lower())
        holder = self._keys.setdefault(key, ref.identity)
        if holder != ref.identity or key == object_key("", self.job_id, MANIFEST_NAME):
            other = f"node {holder[0]}'s {holder[3]}" if holder != ref.identity else "the job's manifest"
            raise OutputNameCollision(
                f"gives node {ref.node_id}'s {ref.filename} the key {key!r}, as {other}: add {{index}} or {{node}}",
                key=key,
            )
        return key

    async def _stripped(self, path: Path) -> Path | None:
        """A copy of ``path`` without the workflow ComfyUI wrote into it, or ``None`` when it has none."""
        out = (self._work_dir or path.parent) / f".{secrets.token_hex(6)}.stripped"
        try:
            return out if await asyncio.to_thread(strip_metadata, path, out) else None
        except (OSError, ValueError) as exc:
            raise UploadFailed(f"cannot strip the metadata of {path.name}: {exc}", retryable=False) from exc

    async def _publish_file(self, ref: FileRef, index: int = 0) -> OutputItem:
        try:
            path = resolve_ref(ref, self.dirs)
        except OutputPathError as exc:
            raise UploadFailed(str(exc), retryable=False) from exc
        upload_path, name = path, ref.filename
        mime_override: str | None = None
        converted: Path | None = None
        fmt = self.options.format
        if fmt is not None and ref.kind is (OutputKind.AUDIO if fmt.is_audio else OutputKind.IMAGE):
            work_dir = self._work_dir or path.parent
            try:
                if fmt.is_audio:
                    upload_path, name, mime_override = await asyncio.to_thread(convert_audio, path, fmt.value, work_dir)
                else:
                    upload_path, name, mime_override = await asyncio.to_thread(
                        convert_image, path, fmt.value, self.options.quality, work_dir
                    )
            except (OSError, ValueError) as exc:
                raise UploadFailed(f"cannot convert {ref.filename}: {exc}", retryable=False) from exc
            converted = upload_path if upload_path != path else None
        try:
            if self.options.strip_metadata and ref.kind in (OutputKind.IMAGE, OutputKind.ANIMATED, OutputKind.AUDIO):
                stripped = await self._stripped(upload_path)
                if stripped is not None:
                    if converted is not None:
                        with contextlib.suppress(OSError):
                            converted.unlink()
                    upload_path = converted = stripped
            key = self._named_key(ref, index, name)
            stored_name = PurePosixPath(key).name if key is not None else self._stored_name(ref, name)
            try:
                content_type = mime_override or await asyncio.to_thread(_content_type, upload_path)
            except OSError as exc:
                raise UploadFailed(f"cannot read output {ref.filename}: {exc}", retryable=False) from exc
            # Hashing and measuring the file runs beside its upload: both read it, neither needs the other.
            describing = asyncio.ensure_future(asyncio.to_thread(describe_file, upload_path))
            try:
                stored: StoredObject = await self.store.upload(
                    self.job_id,
                    ref.node_id,
                    upload_path,
                    filename=stored_name,
                    content_type=content_type,
                    key=key,
                )
            finally:
                if not describing.done():
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(describing)
            try:
                meta = describing.result()
            except OSError as exc:
                raise UploadFailed(f"cannot read output {ref.filename}: {exc}", retryable=False) from exc
            mime = mime_override or meta.mime
            url = await self.store.presign(stored, self.options.presign_seconds) if stored.uri else None
            inline = stored.inline
            if inline is None and self._budget.take(meta.bytes):
                inline = base64.b64encode(await asyncio.to_thread(upload_path.read_bytes)).decode("ascii")
        finally:
            if converted is not None:
                with contextlib.suppress(OSError):
                    converted.unlink()
        self.paths[meta.sha256] = path
        return OutputItem(
            node_id=ref.node_id,
            node_title=ref.node_title,
            kind=ref.kind,
            filename=stored_name,
            temp=ref.temp,
            mime=mime,
            bytes=meta.bytes,
            sha256=meta.sha256,
            width=meta.width,
            height=meta.height,
            duration_s=meta.duration_s,
            s3_uri=stored.uri,
            url=url,
            base64=inline,
            variation=self._variation_of(ref.node_id) if self._variation_of is not None else None,
        )

    async def publish_derived(self, source: OutputItem, path: Path, role: OutputRole) -> OutputItem:
        """Upload a file made from ``source`` (a thumbnail, a poster...) beside it, linked by ``derived_from``."""
        content_type = await asyncio.to_thread(_content_type, path)
        # Beside the node's folder, not in it: a node's folder stays exactly what the graph made (a dataset prefix).
        folder = f"{source.node_id}.previews"
        stored = await self.store.upload(self.job_id, folder, path, filename=path.name, content_type=content_type)
        meta = await asyncio.to_thread(describe_file, path)
        url = await self.store.presign(stored, self.options.presign_seconds) if stored.uri else None
        item = OutputItem(
            node_id=source.node_id,
            node_title=source.node_title,
            kind=OutputKind.ANIMATED if (meta.frames or 1) > 1 else OutputKind.IMAGE,
            filename=path.name,
            mime=meta.mime,
            bytes=meta.bytes,
            sha256=meta.sha256,
            width=meta.width,
            height=meta.height,
            s3_uri=stored.uri,
            url=url,
            base64=stored.inline,
            role=role,
            derived_from=source.sha256,
        )
        self.items.append(item)
        return item

    async def commit(self, result: JobResult) -> JobResult:
        """Write ``manifest.json`` (the commit marker) with the finished result; returns it with ``manifest_uri``."""
        manifest_key_obj = await self.store.write_manifest(
            self.job_id, result.model_copy(update={"manifest_uri": None}).model_dump(mode="json")
        )
        return result.model_copy(update={"manifest_uri": manifest_key_obj.uri})


async def stored_result(store: OutputStore, job_id: str) -> JobResult | None:
    """The result of an earlier, completed run of ``job_id``, if its manifest (the commit marker) exists: the
    replay check, read straight from the output store."""
    manifest = await store.read_manifest(job_id)
    if manifest is None:
        return None
    result = JobResult.model_validate(manifest)
    uri = f"s3://{store.bucket}/{object_key(store.prefix, job_id, MANIFEST_NAME)}"
    return result.model_copy(update={"manifest_uri": uri})
