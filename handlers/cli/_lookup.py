"""Find a job by either of its ids - the queue job id (dispatch's record key, also ``input.job_id``) or the RunPod
job id - and put together what is known about it: the dispatch record (state, attempt, progress, outputs, error,
QA) and RunPod's ``/status``. ``status``, ``cancel`` and ``--wait`` all go through :class:`JobLookup`.

Where each comes from: the jobs table is ``$RELAY_JOBS_TABLE`` (with the AWS variables) or the local stack's; the
RunPod endpoint is ``--endpoint``/``$RUNPOD_ENDPOINT_ID`` or the local stack's. Either may be absent: a job sent
straight to RunPod has no record, and a deployment without dispatch has no table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from handlers.cli._runpod_client import TERMINAL_STATUSES, RunPodApiError, RunPodCli

if TYPE_CHECKING:
    from handlers.cli._runpod_client import EndpointTarget

__all__ = ["JobLookup", "JobNotFound", "JobView", "RecordSource"]

#: Record states after which nothing changes any more.
_RECORD_ENDS = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "REJECTED"})


class JobNotFound(LookupError):
    """Neither the jobs table nor the RunPod endpoint knows the id; the message says where it looked."""


@dataclass
class JobView:
    """One job as the CLI shows it. ``state`` is the dispatch vocabulary (``SUBMITTED``, ``RUNNING``,
    ``SUCCEEDED``...): the record's own, else what RunPod's status means."""

    job_id: str | None = None
    runpod_id: str | None = None
    record: dict[str, Any] | None = None
    runpod: dict[str, Any] | None = None
    #: The latest progress event (``percent``, ``node_title``, ``step``, ``step_max``), from RunPod or the record.
    progress: dict[str, Any] | None = None
    streamed_outputs: list[dict[str, Any]] = field(default_factory=list)
    streamed_error: dict[str, Any] | None = None

    @property
    def state(self) -> str:
        if self.record is not None:
            return str(self.record.get("state", "UNKNOWN"))
        if self.runpod is not None:
            from handlers.contract import state_for_runpod  # noqa: PLC0415

            try:
                return state_for_runpod(str(self.runpod.get("status"))).value
            except ValueError:
                return str(self.runpod.get("status", "UNKNOWN"))
        return "UNKNOWN"

    @property
    def ended(self) -> bool:
        if self.record is not None:
            return self.state in _RECORD_ENDS
        return self.runpod is not None and str(self.runpod.get("status")) in TERMINAL_STATUSES

    @property
    def ok(self) -> bool:
        return self.state == "SUCCEEDED"

    def outputs(self) -> list[dict[str, Any]]:
        from handlers.cli._follow import result_outputs  # noqa: PLC0415

        if self.record is not None and self.record.get("outputs"):
            return [dict(o) for o in self.record["outputs"] if isinstance(o, Mapping)]
        if self.runpod is not None and self.runpod.get("status") == "COMPLETED":
            return result_outputs(self.runpod)
        return list(self.streamed_outputs)

    def error(self) -> dict[str, Any] | None:
        from handlers.cli._follow import job_error_from_status  # noqa: PLC0415

        if self.record is not None and isinstance(self.record.get("error"), Mapping):
            return dict(self.record["error"])
        if self.streamed_error is not None:
            return self.streamed_error
        if self.runpod is not None and str(self.runpod.get("status")) in TERMINAL_STATUSES - {"COMPLETED"}:
            return job_error_from_status(self.runpod)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "runpod_id": self.runpod_id,
            "state": self.state,
            "progress": self.progress,
            "outputs": self.outputs(),
            "error": self.error(),
            "record": self.record,
            "runpod": self.runpod,
        }


@dataclass
class RecordSource:
    """The dispatch jobs table, read through dispatch's own store (one decoding of a record, TTL included)."""

    table: str
    dynamodb: Any
    s3: Any
    bucket: str

    def _store(self) -> Any:
        import time  # noqa: PLC0415

        from handlers.dispatch._dynamo_store import DynamoJobStore  # noqa: PLC0415

        return DynamoJobStore(
            self.table, dynamodb=self.dynamodb, s3=self.s3, bucket=self.bucket, clock_ms=lambda: int(time.time() * 1000)
        )

    def find(self, job: str) -> dict[str, Any] | None:
        """The record whose job id or RunPod id is ``job``."""
        from handlers.contract import is_job_id  # noqa: PLC0415

        store = self._store()
        record = store.get(job) if is_job_id(job) else None
        if record is None:
            record = store.find_by_runpod_id(job)
        if record is None:
            return None
        found: dict[str, Any] = record.model_dump(mode="json", exclude_none=True)
        return found


def record_source(args: argparse.Namespace, env: Mapping[str, str]) -> RecordSource | None:
    """The jobs table for these arguments: ``$RELAY_JOBS_TABLE`` for a real deployment (``--endpoint``), else the
    local stack's (``env`` is its client environment)."""
    from handlers.cli._aws import stack_client  # noqa: PLC0415

    if not env:
        table = os.environ.get("RELAY_JOBS_TABLE", "").strip()
        if not table:
            return None
        return RecordSource(table, stack_client({}, "dynamodb"), stack_client({}, "s3"), "unused")
    if "RELAY_JOBS_TABLE" not in env:
        return None
    return RecordSource(
        env["RELAY_JOBS_TABLE"],
        stack_client(env, "dynamodb"),
        stack_client(env, "s3"),
        env.get("RELAY_S3_BUCKET", "unused"),
    )


class JobLookup:
    """``async with JobLookup(target, records) as lookup: view = await lookup.find(job)``."""

    def __init__(self, target: EndpointTarget | None, records: RecordSource | None) -> None:
        self.target = target
        self.records = records
        self.api = RunPodCli(target) if target is not None else None
        self._streaming = True

    async def __aenter__(self) -> JobLookup:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.api is not None:
            await self.api.aclose()

    def _where(self) -> str:
        places = []
        if self.records is not None:
            places.append(f"jobs table {self.records.table}")
        if self.target is not None:
            places.append(f"RunPod endpoint {self.target.url}")
        return " or ".join(places) or "nowhere (no endpoint and no jobs table configured)"

    async def find(self, job: str) -> JobView:
        """The job's record and RunPod status; raises :class:`JobNotFound` when neither knows it."""
        record = await asyncio.to_thread(self.records.find, job) if self.records is not None else None
        view = JobView(record=record)
        if record is not None:
            view.job_id = str(record.get("job_id"))
            view.runpod_id = record.get("runpod_id")
            progress = record.get("progress")
            view.progress = dict(progress) if isinstance(progress, Mapping) else None
        runpod_id = view.runpod_id if record is not None else job
        if self.api is not None and runpod_id:
            try:
                view.runpod = await self.api.status(runpod_id)
                view.runpod_id = runpod_id
            except RunPodApiError as exc:
                # With a record, RunPod not knowing the job (it keeps results 30 min) or not answering is fine.
                if record is None and exc.status not in (400, 404):
                    raise
            output = view.runpod.get("output") if view.runpod is not None else None
            running = view.runpod is not None and view.runpod.get("status") == "IN_PROGRESS"
            if running and isinstance(output, Mapping) and "percent" in output:
                view.progress = dict(output)  # a result-mode worker's latest progress_update
        if view.record is None and view.runpod is None:
            raise JobNotFound(f"no job {job} in the {self._where()}")
        return view

    async def progress(self, view: JobView) -> None:
        """Fill ``view`` with what a streaming worker sent since the last call (progress, outputs, its error)."""
        if self.api is None or not view.runpod_id or not self._streaming:
            return
        try:
            answer = await self.api.stream(view.runpod_id)
        except RunPodApiError:
            self._streaming = False
            return
        for chunk in answer.get("stream") or []:
            event = chunk.get("output") if isinstance(chunk, Mapping) else None
            if not isinstance(event, Mapping):
                continue
            if event.get("type") == "progress":
                view.progress = dict(event)
            elif event.get("type") == "output" and isinstance(event.get("output"), Mapping):
                view.streamed_outputs.append(dict(event["output"]))
            elif event.get("type") == "error" and isinstance(event.get("details"), Mapping):
                view.streamed_error = dict(event["details"])

    async def follow(
        self,
        job: str,
        *,
        on_update: Callable[[JobView], None] | None = None,
        poll_interval_s: float = 0.5,
        timeout_s: float = 600.0,
        not_found_grace_s: float = 30.0,
    ) -> JobView:
        """Poll until the job ends (or ``timeout_s``); ``on_update`` sees every view. A job not found yet is looked
        for again for ``not_found_grace_s`` (a message the queue has not delivered to ``on_queue`` yet)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        streamed: JobView | None = None
        while True:
            try:
                view = await self.find(job)
            except JobNotFound:
                if loop.time() - started >= not_found_grace_s:
                    raise
                await asyncio.sleep(poll_interval_s)
                continue
            if streamed is not None:  # what /stream gave earlier is not repeated by it: carry it over
                view.streamed_outputs, view.streamed_error = streamed.streamed_outputs, streamed.streamed_error
                view.progress = view.progress or streamed.progress
            if not view.ended:
                await self.progress(view)
            streamed = view
            if on_update is not None:
                on_update(view)
            if view.ended or loop.time() - started >= timeout_s:
                return view
            await asyncio.sleep(poll_interval_s)

    async def cancel(self, job: str) -> tuple[JobView, dict[str, Any] | None]:
        """Cancel the job's RunPod run; returns the view before, and RunPod's answer (``None``: nothing to cancel,
        the job has ended or was never submitted)."""
        view = await self.find(job)
        if view.ended or self.api is None or not view.runpod_id:
            return view, None
        return view, await self.api.cancel(view.runpod_id)
