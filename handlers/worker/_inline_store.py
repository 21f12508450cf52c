"""Outputs returned inline, as base64 in the job's result, for a worker with no bucket: what worker-comfyui users
expect. Behind the same :class:`OutputStore` interface as S3, so nothing else in the worker knows the difference.

Everything must fit in one RunPod payload: the ``/run`` result (10 MB) in result mode, one stream chunk (1 MB) in
streaming mode. The store counts the base64 it hands out and refuses, with :class:`OutputTooLarge` naming the limit,
the output that would cross it - so a result is never trimmed silently. Nothing is kept: there is no manifest, so a
retried job runs again.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from handlers.worker._events import MAX_RESULT_BYTES, MAX_STREAM_CHUNK_BYTES
from handlers.worker._storage import MANIFEST_NAME, OutputTooLarge, StoredObject, named_key, object_key

__all__ = ["RESULT_MARGIN_BYTES", "InlineOutputStore", "inline_store"]

#: Room left in the payload for everything that is not base64: the items' metadata, seeds, timings.
RESULT_MARGIN_BYTES: Final = 64 * 1024


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


class InlineOutputStore:
    """``InlineOutputStore(payload_limit_bytes, limit_name)``: one per job (it counts that job's outputs)."""

    bucket = ""
    prefix = ""

    def __init__(self, payload_limit_bytes: int, limit_name: str) -> None:
        self.budget = max(0, payload_limit_bytes - RESULT_MARGIN_BYTES)
        self.limit_name = limit_name
        self.used = 0

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
        key = named_key("", key) if key is not None else object_key("", job_id, node_id, filename or path.name)
        size = (await asyncio.to_thread(path.stat)).st_size
        encoded_size = 4 * ((size + 2) // 3)
        if self.used + encoded_size > self.budget:
            raise OutputTooLarge(
                f"output {path.name} does not fit inline: the outputs come to {_megabytes(self.used + encoded_size)} "
                f"of base64, over {self.limit_name} ({_megabytes(self.budget)} for outputs); "
                "give the worker a bucket (RELAY_S3_BUCKET) or the job one (output.bucket)",
                key=key,
                retryable=False,
            )
        data = await asyncio.to_thread(path.read_bytes)
        self.used += encoded_size
        return StoredObject("", key, len(data), inline=base64.b64encode(data).decode("ascii"))

    async def presign(self, obj: StoredObject, expires_s: int) -> str:
        return ""  # nothing to link to: the content travels in the result

    async def write_manifest(self, job_id: str, result: Mapping[str, Any]) -> StoredObject:
        return StoredObject("", object_key("", job_id, MANIFEST_NAME), 0)

    async def read_manifest(self, job_id: str) -> dict[str, Any] | None:
        return None


def inline_store(*, stream: bool) -> InlineOutputStore:
    """The store for a worker without a bucket: the whole result is one stream chunk in streaming mode."""
    if stream:
        return InlineOutputStore(MAX_STREAM_CHUNK_BYTES, "RunPod's 1 MB limit per stream chunk (streaming mode)")
    return InlineOutputStore(MAX_RESULT_BYTES, "RunPod's 10 MB limit for a /run result")
