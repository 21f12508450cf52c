"""``--dataset``: a LoRA training dataset from the command line. A local folder is zipped (its images and
``.txt`` captions, one subfolder level, as the worker accepts them) and sent inline; a local ``.zip`` is sent
inline; an http(s) URL is a zip to fetch; an ``s3://`` URI is a zip, or with a trailing ``/`` a prefix."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path
from typing import Any

from handlers.contract import MAX_JOB_INPUT_BYTES, Problem

__all__ = ["dataset_input"]

#: Room for the rest of the job: base64 grows the zip by a third.
_INLINE_LIMIT = (MAX_JOB_INPUT_BYTES - 100_000) * 3 // 4


def dataset_input(source: str, cwd: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The job's ``dataset`` for ``source``, or the problems that stop it."""
    if source.startswith(("http://", "https://")):
        return {"zip_url": source}, []
    if source.startswith("s3://"):
        return {"s3": source}, []
    path = (cwd / source).expanduser()
    if path.is_dir():
        data = _zip_folder(path)
    elif path.is_file():
        data = path.read_bytes()
    else:
        return None, [Problem(path="input.dataset", message=f"no folder or zip file {path}")]
    if len(data) > _INLINE_LIMIT:
        message = (
            f"{path} is {len(data)} bytes zipped; a job carries at most {_INLINE_LIMIT} inline: upload it to S3 and "
            "pass --dataset s3://bucket/prefix/"
        )
        return None, [Problem(path="input.dataset", message=message)]
    return {"zip_base64": base64.b64encode(data).decode("ascii")}, []


def _zip_folder(folder: Path) -> bytes:
    from handlers.workflow import dataset_file  # noqa: PLC0415 - the workflow package pulls in pydantic models

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:  # images are compressed already
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(folder).as_posix()
            try:
                kept = dataset_file(relative)
            except ValueError:
                kept = None  # the worker would refuse it: leave it out, as it is not part of the dataset
            if kept is not None:
                zf.write(path, kept.path)
    return out.getvalue()
