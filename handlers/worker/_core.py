"""The worker core: one job in, a stream of events out (progress, outputs as they are stored, then the result or
the error). The RunPod adapters in ``_handler`` only forward these events.

A :class:`WorkerRuntime` lives as long as the worker process: one ComfyUI client (one WebSocket), the supervised
ComfyUI process if any, the ``/object_info`` catalogue of the current ComfyUI process, one S3 client. A job runs
in a producer task that pushes events into a queue the caller reads; uploads run beside the prompt (bounded), so
the first output is visible while the rest still renders. Cancelling the reader cancels the producer, which
interrupts the prompt and removes the job's files before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from handlers.common import Backoff, job_context, register_secret, set_prompt_id
from handlers.contract import (
    Dataset,
    ErrorCode,
    GraphFormat,
    JobError,
    JobInput,
    JobResult,
    OutputItem,
    OutputOptions,
    OutputReadyEvent,
    Problem,
    ProgressEvent,
    QaOptions,
    input_digest,
    is_job_id,
)
from handlers.outbound import UrlRefused
from handlers.worker._assets import Assets, JobAssets, asset_settings
from handlers.worker._config import WorkerConfig
from handlers.worker._dataset import stage_dataset
from handlers.worker._events import (
    CoreEvent,
    Finished,
    NodeTimeline,
    ProgressThrottle,
    assemble_result,
    error_for,
    progress_event,
    result_timings,
)
from handlers.worker._folders import JobFolders, job_folders
from handlers.worker._inline_store import inline_store
from handlers.worker._models import trained_models
from handlers.worker._pipeline import GpuGate
from handlers.worker._progress_cost import CostModel
from handlers.worker._progress_sink import WebhookOutbox
from handlers.worker._provenance import build_provenance, read_lock
from handlers.worker._publish import OutputPublisher, stored_result
from handlers.worker._s3 import new_s3_client_async
from handlers.worker._staging import InputStager, JobFiles, MediaFetcher, MediaLimits, job_files
from handlers.worker._startup import process_age_ms
from handlers.worker._storage import OutputStore, S3OutputStore, UploadSettings
from handlers.worker._supervisor import ComfyProcess
from handlers.worker._uploads import Uploads
from handlers.worker._vram import VramPlanner, VramReading, graph_family, is_out_of_memory, vram_reading
from handlers.worker.comfy import (
    Adopted,
    ComfyClient,
    ComfyLimits,
    ComfyUICrashed,
    ComfyUIError,
    ComfyUITransient,
    ExecutionFailed,
    NodeStarted,
    Output,
    ProgressUpdate,
    Queued,
    Started,
    Succeeded,
    prompt_id_for,
)
from handlers.worker.qa import JobQaRun, QaAttempts
from handlers.workflow import (
    RESULT_PREVIEWS,
    BoundWorkflow,
    Catalogue,
    TemplateManifest,
    job_params,
    load_character,
    load_template,
    lora_pack_entry,
    output_namer,
    prepare_run,
    resolve_graph,
    resolve_template,
    ui_to_api,
    validate,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from handlers.image import ImageLock

__all__ = ["WorkerRuntime"]

logger = logging.getLogger("handlers.worker.core")
T = TypeVar("T")

#: The worker's ComfyUI client limits: reconnect quickly, ComfyUI is beside us and restarts are ours.
WORKER_LIMITS = ComfyLimits(reconnect=Backoff(base_s=0.05, cap_s=1.0, jitter=0.1), socket_wait=2.0)


class _ComfyDied(Exception):
    """The supervised ComfyUI process exited while the job used it."""


StoreFactory = Callable[[str, str], OutputStore]


class WorkerRuntime:
    """What one worker process keeps between jobs. ``comfy``, ``store_factory``, ``fetcher`` and ``process`` are
    injectable; ``None`` builds the real ones from ``config`` on :meth:`start`."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        comfy: ComfyClient | None = None,
        process: ComfyProcess | None = None,
        store_factory: StoreFactory | None = None,
        fetcher: MediaFetcher | None = None,
        assets: Assets | None = None,
        client_id: str | None = None,
    ) -> None:
        self.config = config
        self.process = process
        if self.process is None and config.comfyui_command is not None:
            self.process = ComfyProcess(config.comfyui_command)
        self._comfy = comfy
        self._store_factory = store_factory
        self._fetcher = fetcher
        self._assets = assets
        self._client_id = client_id or f"relay-{os.environ.get('RUNPOD_POD_ID') or uuid.uuid4().hex[:12]}"
        self._s3: S3Client | None = None
        self._catalogue: tuple[int, Catalogue] | None = None
        self._ready_generation: int | None = None
        self._warmed_generation: int | None = None
        self._reported_generation: int | None = None
        self._upload_slots: asyncio.Semaphore | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._restart_lock = asyncio.Lock()
        #: Several jobs in flight: exclusive ones run alone; the SDK's concurrency follows it.
        self.gate = GpuGate(config.max_concurrent_jobs)
        #: When ComfyUI should unload models before a prompt (queue order is execution order).
        self.vram = VramPlanner(config.free_vram)
        #: What results record about how outputs were made: ComfyUI's last /system_stats, the image's lock.
        self.system_stats: dict[str, Any] | None = None
        self.lock: ImageLock | None = None
        #: What each node of each template costs, learned from this worker's runs: progress moves with time.
        self.costs = CostModel()

    # ------------------------------------------------------------------------------------------------ lifecycle

    @property
    def comfy(self) -> ComfyClient:
        if self._comfy is None:
            raise RuntimeError("WorkerRuntime.start() has not run")
        return self._comfy

    async def start(self) -> None:
        """Build the clients (idempotent). Cheap: ComfyUI need not be up yet."""
        async with self._start_lock:
            if self._started:
                return
            if self._comfy is None:
                self._comfy = ComfyClient(self.config.comfyui_url, client_id=self._client_id, limits=WORKER_LIMITS)
            if self._store_factory is None or self._fetcher is None:
                self._s3 = await new_s3_client_async(UploadSettings().botocore_config())
            if self._store_factory is None:
                s3 = self._s3

                def factory(bucket: str, prefix: str) -> OutputStore:
                    return S3OutputStore(bucket, prefix, client=s3)

                self._store_factory = factory
            if self._fetcher is None:
                cfg = self.config
                buckets = cfg.extra_buckets | ({cfg.s3_bucket} if cfg.s3_bucket else set())
                limits = MediaLimits(
                    max_bytes=cfg.media_max_bytes, allow_private=cfg.allow_private_urls, buckets=frozenset(buckets)
                )
                self._fetcher = MediaFetcher(limits, s3_client=self._s3)
            if self._assets is None:
                self._assets = Assets(asset_settings(self.config), s3_client=self._s3)
            self._upload_slots = asyncio.Semaphore(self.config.upload_concurrency)
            self.lock = await asyncio.to_thread(read_lock, self.config.lock_file)
            await self._comfy.open()
            self._started = True

    async def aclose(self) -> None:
        if self._comfy is not None:
            await self._comfy.aclose()
        if self.process is not None:
            await asyncio.to_thread(self.process.stop, self.config.stop_timeout_s)

    # ----------------------------------------------------------------------------------------------- ComfyUI

    def _generation(self) -> int:
        return self.process.generation if self.process is not None else 0

    @property
    def fetcher(self) -> MediaFetcher:
        if self._fetcher is None:
            raise RuntimeError("WorkerRuntime.start() has not run")
        return self._fetcher

    @property
    def assets(self) -> Assets:
        if self._assets is None:
            raise RuntimeError("WorkerRuntime.start() has not run")
        return self._assets

    def uploads(self, clock_ms: Callable[[], float]) -> Uploads:
        """A job's upload tracker, sharing this worker's upload slots with every other job."""
        if self._upload_slots is None:
            raise RuntimeError("WorkerRuntime.start() has not run")
        return Uploads(self._upload_slots, clock_ms)

    async def until_died(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` unless the supervised ComfyUI exits first (then raise :class:`_ComfyDied`)."""
        if self.process is None:
            return await awaitable
        work = asyncio.ensure_future(awaitable)
        watcher = asyncio.create_task(self.process.wait_exit())
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()
            raise _ComfyDied
        finally:
            for task in (work, watcher):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def ensure_ready(self, deadline: float) -> None:
        """ComfyUI answers (started, or restarted after a crash, when supervised) and the warmup has run."""
        loop = asyncio.get_running_loop()
        if self.process is not None and not self.process.alive():
            async with self._restart_lock:  # jobs in flight all see the crash: one restart
                if not self.process.alive():
                    self._ready_generation = None
                    await asyncio.to_thread(self.process.start)
        generation = self._generation()
        if self._ready_generation == generation and self.comfy.socket_connected:
            return
        ready_by = min(deadline, loop.time() + self.config.startup_timeout_s)
        try:
            self.system_stats = await self.until_died(self.comfy.wait_ready(ready_by))
        except _ComfyDied:
            assert self.process is not None
            # died() joins the output reader (up to a second) for the last lines: off the loop.
            raise await asyncio.to_thread(self.process.died, "ComfyUI exited before it was ready") from None
        self._ready_generation = generation
        if self.config.warmup_workflow is not None and self._warmed_generation != generation:
            self._warmed_generation = generation
            await self._warmup(self.config.warmup_workflow, deadline)
        if self._reported_generation != generation:
            await self.catalogue()  # every job validates against it: fetched here, part of being ready
            self._reported_generation = generation
            # The cold-start figure: process start -> ComfyUI answering, catalogue loaded, warmup done.
            logger.info("comfyui ready", extra={"generation": generation, "process_age_ms": process_age_ms()})

    async def _warmup(self, path: Path, deadline: float) -> None:
        """Run the warmup graph once per ComfyUI process (models loaded before the first real job). A failure is
        logged, not fatal: the job that follows will say what is wrong if it matters."""
        started = asyncio.get_running_loop().time()
        try:
            graph = json.loads(await asyncio.to_thread(path.read_text))
            prompt_id = f"warmup-{uuid.uuid4()}"
            async with contextlib.aclosing(self.comfy.run_prompt(graph, prompt_id, deadline=deadline)) as events:
                async for _event in events:
                    pass
        except (ComfyUIError, OSError, ValueError) as exc:
            logger.warning("warmup workflow %s failed: %s", path, exc)
            return
        logger.info("warmup done in %.0f ms", (asyncio.get_running_loop().time() - started) * 1000)

    async def catalogue(self) -> Catalogue:
        """The live ``/object_info``, fetched once per ComfyUI process."""
        generation = self._generation()
        if self._catalogue is None or self._catalogue[0] != generation:
            info = await self.comfy.object_info()
            self._catalogue = (generation, await asyncio.to_thread(Catalogue, info))
        return self._catalogue[1]

    async def vram_now(self) -> VramReading | None:
        """Free and total VRAM from ``/system_stats``; ``None`` when ComfyUI does not say (or does not answer)."""
        try:
            return vram_reading(await self.comfy.system_stats())
        except ComfyUIError:
            return None

    def forget_catalogue(self) -> None:
        self._catalogue = None
        self._ready_generation = None

    # -------------------------------------------------------------------------------------------------- stores

    def store_for(self, options: OutputOptions) -> OutputStore:
        """The store a job's outputs go to; a bucket the worker does not own must be allowed (RELAY_ALLOWED_BUCKETS):
        writing outputs and reading manifests there would otherwise reach any bucket the worker's role can.
        With no bucket at all, outputs come back inline (as worker-comfyui users expect)."""
        bucket = options.bucket or self.config.s3_bucket
        if bucket is None:
            return inline_store(stream=self.config.stream)
        if not self.config.bucket_allowed(bucket):
            problem = Problem(path="input.output.bucket", message=f"{bucket!r} is not a bucket this worker may use")
            raise _Fail(JobError(code=ErrorCode.INVALID_INPUT, message=str(problem), problems=[problem]))
        prefix = options.prefix if options.prefix is not None else self.config.s3_prefix
        assert self._store_factory is not None
        return self._store_factory(bucket, prefix)

    # ----------------------------------------------------------------------------------------------------- jobs

    async def run_job(self, job: Mapping[str, Any]) -> AsyncGenerator[CoreEvent, None]:
        """Run one RunPod job (``{"id", "input"}``); the last event is always :class:`Finished`."""
        await self.start()
        loop = asyncio.get_running_loop()
        started_ms = loop.time() * 1000
        runpod_id = str(job.get("id") or "")
        try:
            job_input = JobInput.model_validate(job.get("input") or {})
        except ValidationError as exc:
            error = error_for(exc, job_id=runpod_id or None)
            assert error is not None
            with job_context(runpod_id or None):
                logger.info("job rejected: %s", error.summary())
            yield Finished(error=error)
            return
        job_id = job_input.job_id or runpod_id
        if not is_job_id(job_id):
            message = f"the job id {job_id!r} cannot name files and keys; give input.job_id"
            yield Finished(error=JobError(code=ErrorCode.INVALID_INPUT, message=message))
            return
        if job_input.progress_webhook is not None:
            register_secret(job_input.progress_webhook.secret)
        run = _JobRun(self, job_input, job_id, started_ms)
        with job_context(job_id):
            queue: asyncio.Queue[CoreEvent] = asyncio.Queue()
            producer = asyncio.create_task(run.produce(queue), name=f"job {job_id}")
            try:
                while True:
                    event = await queue.get()
                    yield event
                    if isinstance(event, Finished):
                        break
            finally:
                if not producer.done():
                    producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer


@dataclass
class _JobRun:
    """One job while it runs: ``produce`` does the work and puts events on the queue. The I/O it does not own has
    its own object: the job's folders (:class:`JobFolders`: shared disk or HTTP), its uploads (:class:`Uploads`),
    the publisher of its outputs, and the replay check (one manifest read, :func:`stored_result`)."""

    runtime: WorkerRuntime
    job: JobInput
    job_id: str
    started_ms: float
    prompt_id: str = ""
    queue: asyncio.Queue[CoreEvent] | None = None
    outbox: WebhookOutbox | None = None
    throttle: ProgressThrottle = field(init=False)
    timeline: NodeTimeline = field(default_factory=NodeTimeline)
    queued_ms: float | None = None
    running_ms: float | None = None
    ended_ms: float | None = None
    warnings: list[str] = field(default_factory=list)
    flush: asyncio.TimerHandle | None = None
    stale_check: asyncio.Task[bool] | None = None
    stored_check: asyncio.Task[JobResult | None] | None = None
    replay: JobResult | None = None
    job_assets: JobAssets | None = None
    """The stored result of an earlier, completed run of this job id, once the replay check found one."""
    digest: str = ""
    manifest: TemplateManifest | None = None
    family: str | None = None
    vram_before: asyncio.Task[VramReading | None] | None = None
    vram_after: asyncio.Task[VramReading | None] | None = None
    vram_freed: bool = False
    oom_retries: int = 0
    outputs_seen: int = 0
    template_qa: QaOptions | None = None
    qa_run: JobQaRun | None = None

    def __post_init__(self) -> None:
        self.throttle = ProgressThrottle(self.runtime.config.progress_interval_ms)
        self.prompt_id = prompt_id_for(self.job_id)
        self.digest = input_digest(self.job)

    @property
    def config(self) -> WorkerConfig:
        return self.runtime.config

    @property
    def exclusive(self) -> bool:
        return self.manifest is not None and self.manifest.runs_alone

    @property
    def cost_key(self) -> str | None:
        """Runs of the same template (for the same character) share what their nodes cost; inline graphs do not."""
        if self.job.template is None:
            return None
        return f"{self.job.character or ''}/{self.job.template}"

    def now_ms(self) -> float:
        return asyncio.get_running_loop().time() * 1000

    def elapsed_ms(self) -> int:
        return max(0, round(self.now_ms() - self.started_ms))

    def emit(self, event: CoreEvent) -> None:
        assert self.queue is not None
        self.queue.put_nowait(event)
        if self.outbox is not None and isinstance(event, ProgressEvent | OutputReadyEvent):
            self.outbox.offer(event)

    async def produce(self, queue: asyncio.Queue[CoreEvent]) -> None:
        self.queue = queue
        media_index = {m.name: i for i, m in enumerate(self.job.media)}
        try:
            result = await self._run()
            finished = Finished(result=result)
        except _Fail as exc:
            finished = Finished(error=exc.error.model_copy(update={"job_id": self.job_id}))
        except asyncio.CancelledError:
            logger.info("job cancelled; prompt interrupted and files removed")
            raise
        except Exception as exc:
            error = error_for(exc, job_id=self.job_id, prompt_id=self.prompt_id, media_index=media_index)
            if error is None:
                logger.exception("job failed with an unexpected error")
                error = JobError(
                    code=ErrorCode.INTERNAL,
                    message=f"{type(exc).__name__}: {exc}",
                    job_id=self.job_id,
                    prompt_id=self.prompt_id,
                )
            if isinstance(exc, ComfyUITransient):
                self.runtime.forget_catalogue()
            finished = Finished(error=error)
        if finished.error is not None:
            logger.info("job failed: %s", finished.error.summary(), extra={"code": finished.error.code.value})
        else:
            logger.info("job succeeded", extra={"outputs": len(finished.result.outputs) if finished.result else 0})
        queue.put_nowait(finished)

    async def _run(self) -> JobResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.job.timeout_s
        store = self.runtime.store_for(self.job.output)
        scratch_root = self.config.scratch_dir or Path(tempfile.gettempdir()) / "comfy-relay"
        folders = job_folders(
            self.config, self.runtime.comfy, self.job_id, scratch_root / f"{self.job_id}-{uuid.uuid4().hex[:8]}"
        )
        # The replay check (one S3 read) runs beside everything up to queueing the prompt: readiness, resolving,
        # validating, ComfyUI's own look-ups for the prompt id. Only staging and queueing wait for it.
        self.stored_check = asyncio.create_task(self._stored_result(store))
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await self.runtime.ensure_ready(deadline)
                    self.stale_check = asyncio.create_task(folders.outputs_lost(self.prompt_id))
                    bound = await self._resolve()
            except Exception:
                # A completed job is answered even if ComfyUI is down now or its template has changed since.
                with contextlib.suppress(Exception):
                    if await self._replayed():
                        assert self.replay is not None
                        return self._answer_replay(self.replay)
                raise
            if self.job.progress_webhook is not None:
                try:
                    self.outbox = await WebhookOutbox.open(
                        self.job.progress_webhook,
                        self.job_id,
                        timeout_s=self.config.webhook_timeout_s,
                        max_queued=self.config.webhook_queue_size,
                        allow_private=self.config.allow_private_urls,
                    )
                except UrlRefused as exc:
                    problem = Problem(path="input.progress_webhook.url", message=exc.message)
                    raise _Fail(JobError.from_problems([problem])) from exc
            try:
                with self.runtime.gate.exclusive_job() if self.exclusive else contextlib.nullcontext():
                    result = await self._execute(bound, store, folders, deadline)
            finally:
                if self.outbox is not None:
                    await self.outbox.aclose()
            if result is None:
                assert self.replay is not None
                return self._answer_replay(self.replay)
            return result
        finally:
            if self.job_assets is not None:
                self.job_assets.release()
            for task in (self.stored_check, self.stale_check, self.vram_before, self.vram_after):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    @staticmethod
    def _answer_replay(result: JobResult) -> JobResult:
        logger.info("job already completed: returning its manifest")
        return result

    async def _stored_result(self, store: OutputStore) -> JobResult | None:
        """The stored result of this job id, if it is this job's: a manifest made from another input is a
        conflict, never an answer (the same input still replays)."""
        stored = await stored_result(store, self.job_id)
        if stored is not None and stored.input_digest is not None and stored.input_digest != self.digest:
            message = (
                f"job id {self.job_id!r} was already used for a different input; "
                "give this job its own input.job_id (or resend exactly the same input to get the stored result)"
            )
            raise _Fail(JobError(code=ErrorCode.CONFLICT, message=message))
        return stored

    async def _replayed(self) -> bool:
        """Whether the job's manifest exists (it completed before, and :attr:`replay` is the answer)."""
        assert self.stored_check is not None
        if self.replay is None:
            self.replay = await self.stored_check
        return self.replay is not None

    async def _may_queue(self) -> bool:
        """``before_queue`` for the ComfyUI client: queue only a job that has not completed before; ask ComfyUI to
        unload models first when the VRAM plan says so (applied after the prompt running now, before this one)."""
        if await self._replayed():
            return False
        # Read beside queueing, not before it: /system_stats must not delay the prompt.
        self.vram_before = asyncio.create_task(self.runtime.vram_now())
        manifest = self.manifest
        if self.runtime.vram.plan(
            self.family, template_asks=manifest is not None and manifest.free_vram, exclusive=self.exclusive
        ):
            logger.info("asking ComfyUI to free VRAM before this prompt", extra={"family": self.family})
            await self.runtime.comfy.free()
            self.vram_freed = True
        return True

    async def _clear_stale(self) -> bool:
        """Before ComfyUI is asked about the prompt id: a finished earlier run whose files are gone is removed from
        its history, so the prompt is queued again instead of adopted. ``False``: the job is a replay, stop."""
        if self.stale_check is None:
            return True
        stale = await self.stale_check
        self.stale_check = None
        if stale:
            if await self._replayed():
                return False  # a completed job keeps its history: only a job that must run again touches it
            logger.info("the earlier run of this prompt lost its files: running it again")
            await self.runtime.comfy.delete_from_history([self.prompt_id])
        return True

    async def _resolve(self) -> BoundWorkflow:
        """Bind the job's parameters, apply its graph edits, and fold a seed batch into one graph (one prompt)."""
        job = self.job
        names = [m.name for m in job.media]
        # The live catalogue says which inputs take a file: only those bind to media named in the graph.
        catalogue = await self.runtime.catalogue() if names or job.workflow_format is GraphFormat.UI else None
        if job.template is not None:
            template = await asyncio.to_thread(load_template, self.config.workflows_dir, job.template, job.character)
            self.manifest = template.manifest
            params = job_params(job, self.job_id)
            self.template_qa = template.manifest.qa if template.manifest is not None else None
            return resolve_template(template, params, job.overrides, media_names=names, catalogue=catalogue)
        assert job.workflow is not None
        graph: Mapping[str, Any] = job.workflow
        if job.workflow_format is GraphFormat.UI:
            assert catalogue is not None
            graph = ui_to_api(job.workflow, catalogue)
        return resolve_graph(graph, job.params, job.overrides, media_names=names, catalogue=catalogue)

    async def _execute(
        self, bound: BoundWorkflow, store: OutputStore, folders: JobFolders, deadline: float
    ) -> JobResult | None:
        """Validate, stage, run and publish. ``None``: the job turned out to be a replay (see :attr:`replay`)."""
        if self.job.character is not None and await self._replayed():
            return None  # fetching a pack's assets for a job that is already done would be waste
        bound = await self._provision(bound, deadline)
        catalogue = await self.runtime.catalogue()
        report = validate(bound.graph, catalogue)
        if not report.valid:
            raise _Fail(report.to_job_error(self.job_id))
        self.warnings.extend(bound.warnings)
        out = self.job.output
        namer = output_namer(
            out.name,
            bound,
            job_id=self.job_id,
            labels=self.job.labels,
            output_nodes=report.output_nodes,
            include_temp=out.include_temp,
        )
        await asyncio.to_thread(folders.scratch.mkdir, parents=True, exist_ok=True)
        leftovers = list(folders.leftovers)
        try:
            async with job_files(folders.input_dir, self.job_id, folders.output_roots) as files:
                stage_started = self.now_ms()
                if (self.job.media or self.job.dataset) and await self._replayed():
                    return None  # fetching media for a job that is already done would be waste
                async with asyncio.timeout_at(deadline):
                    staged = await self._stage(folders)
                    if self.job.dataset is not None:
                        self.warnings.extend(await self._stage_dataset(self.job.dataset, bound, folders))
                graph = prepare_run(bound, job_id=self.job_id, attempt=uuid.uuid4().hex[:8], staged=staged)
                stage = (stage_started, self.now_ms())
                publisher = OutputPublisher(
                    store,
                    self.job_id,
                    folders.dirs,
                    self.job.output,
                    files=files if folders.shared_outputs else None,
                    work_dir=folders.scratch,
                    namer=namer,
                    variation_of=bound.variation,
                )
                uploads = self.runtime.uploads(self.now_ms)
                qa = QaAttempts(self.job.qa or self.template_qa or QaOptions())
                while True:  # one pass per attempt: more only when QA fails under policy retry
                    first = len(publisher.items)
                    self.qa_run = JobQaRun(
                        qa.options,
                        self.job.output.previews,
                        graph,
                        paths=publisher.paths,
                        publish=publisher.publish_derived,
                        announce=self._announce,
                        work_dir=folders.scratch,
                    )
                    try:
                        await self._follow(
                            graph,
                            report.output_nodes,
                            publisher=publisher,
                            folders=folders,
                            uploads=uploads,
                            deadline=deadline,
                        )
                    finally:
                        await uploads.cancel()
                        if self.replay is not None:
                            self.qa_run.cancel()
                    if self.replay is not None:
                        return None
                    # QA ran beside the uploads; its verdicts are in once the last check is.
                    publisher.items[first:] = await self.qa_run.verdicts(publisher.items[first:])
                    self.warnings.extend(self.qa_run.warnings)
                    again = qa.after(publisher.items[first:], bound)
                    if again is None:
                        break
                    bound, self.prompt_id = again, prompt_id_for(f"{self.job_id}-qa{len(qa.attempts)}")
                    graph = prepare_run(bound, job_id=self.job_id, attempt=uuid.uuid4().hex[:8], staged=staged)
                timings = result_timings(
                    started=self.started_ms,
                    stage=stage,
                    queued=self.queued_ms,
                    running=self.running_ms,
                    ended=self.ended_ms,
                    upload_ms=uploads.spent_ms,
                    nodes_ms=self.timeline.nodes_ms,
                    now=self.now_ms(),
                ).model_copy(update=await self._vram_timings())
                result = assemble_result(
                    job_id=self.job_id,
                    prompt_id=self.prompt_id,
                    outputs=list(publisher.items[first:]),
                    seeds=bound.seeds,
                    timings=timings,
                    warnings=self.warnings,
                    input_digest=self.digest,
                )
                if self.job.register_as is not None:
                    result = self._register(result, self.job.register_as, bound)
                made = build_provenance(
                    self.job,
                    bound,
                    catalogue,
                    system_stats=self.runtime.system_stats,
                    lock=self.runtime.lock,
                    lock_path=self.config.lock_file,
                )
                result = result.model_copy(update={"provenance": made})
                result = result.model_copy(update={"qa": qa.summary})
                # Every file is stored: the local copies go while the manifest is written (job_files and the
                # finally below find nothing left to do).
                cleanup = asyncio.create_task(asyncio.to_thread(_clean_now, files, leftovers))
                try:
                    async with asyncio.timeout_at(deadline):
                        committed = await publisher.commit(result)
                finally:
                    await asyncio.shield(cleanup)
                return committed
        finally:
            await asyncio.shield(asyncio.to_thread(_remove_trees, leftovers))

    async def _provision(self, bound: BoundWorkflow, deadline: float) -> BoundWorkflow:
        """The character's assets this job uses: fetched (once per worker), verified and placed; the graph names
        the placed files. Leased until the job ends."""
        if self.job.character is None:
            return bound
        profile = await asyncio.to_thread(load_character, self.config.workflows_dir, self.job.character)
        self.job_assets = self.runtime.assets.job(self.job_id)
        async with asyncio.timeout_at(deadline):
            bound, new_models = await self.job_assets.prepare(profile, bound)
        if new_models:
            self.runtime.forget_catalogue()  # ComfyUI lists the new model file from now on
        return bound

    async def _stage(self, folders: JobFolders) -> dict[str, str]:
        """Inputs into ``<input>/<job id>/``, visible to ComfyUI; returns media name -> the name its loaders see."""
        staged = {}
        if self.job.media:
            stager = InputStager(folders.input_dir, self.job_id, self.runtime.fetcher)
            staged = await stager.stage_all(self.job.media)
        if self.job_assets is not None:
            staged.update(await self.job_assets.stage(folders.input_dir))
        await folders.hand_over(staged)
        return {name: item.comfy_name for name, item in staged.items()}

    def _register(self, result: JobResult, character: str, bound: BoundWorkflow) -> JobResult:
        entry = lora_pack_entry(character, result.outputs, _str_or_none(bound.params.get("trigger_word")))
        if entry is None:
            return result.model_copy(
                update={"warnings": [*result.warnings, "register_as: no trained model to register"]}
            )
        logger.info("trained LoRA registered for %s as %s", character, entry.file)
        return result.model_copy(update={"registered": entry})

    async def _stage_dataset(self, dataset: Dataset, bound: BoundWorkflow, folders: JobFolders) -> list[str]:
        resolution = bound.params.get("resolution")
        staged = await stage_dataset(
            dataset,
            folders=folders,
            job_id=self.job_id,
            fetcher=self.runtime.fetcher,
            trigger=_str_or_none(bound.params.get("trigger_word")),
            resolution=resolution if isinstance(resolution, int) else None,
        )
        return staged.report.warnings

    async def _follow(
        self,
        graph: Mapping[str, Any],
        output_nodes: tuple[str, ...],
        *,
        publisher: OutputPublisher,
        folders: JobFolders,
        uploads: Uploads,
        deadline: float,
    ) -> None:
        set_prompt_id(self.prompt_id)
        self.family = (self.manifest.family if self.manifest is not None else None) or graph_family(graph)
        requeued = False
        while True:
            work = self._consume(
                graph, output_nodes, publisher=publisher, folders=folders, uploads=uploads, deadline=deadline
            )
            runner = asyncio.create_task(work)
            broken = asyncio.create_task(uploads.failed.wait())
            crashed = False
            try:
                await self.runtime.until_died(asyncio.wait({runner, broken}, return_when=asyncio.FIRST_COMPLETED))
            except _ComfyDied:
                crashed = True
            finally:
                if self.flush is not None:
                    self.flush.cancel()
                    self.flush = None
                for task in (runner, broken):
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
            failure = None if crashed or runner.cancelled() else runner.exception()
            if crashed or isinstance(failure, ComfyUICrashed):
                if not requeued and self._never_ran():
                    # Queued behind the prompt that took ComfyUI down: this one never ran, so it runs on the
                    # restarted ComfyUI instead of failing (once: a prompt that kills ComfyUI itself fails next time).
                    requeued = True
                    logger.warning("ComfyUI went away before this job's prompt started: queueing it again")
                    self.queued_ms = None
                    await self.runtime.ensure_ready(deadline)
                    continue
                if crashed:
                    raise ComfyUICrashed(
                        "ComfyUI exited while running the job; it is being restarted", prompt_id=self.prompt_id
                    )
            break
        if runner.cancelled():
            raise uploads.failure()
        if failure is not None:
            raise failure
        # The prompt is done: every output it reported must be stored before the job may succeed.
        async with asyncio.timeout_at(deadline):
            await uploads.wait()

    def _never_ran(self) -> bool:
        return self.running_ms is None and self.outputs_seen == 0

    async def _vram_timings(self) -> dict[str, Any]:
        before = await self.vram_before if self.vram_before is not None else None
        after = await self.vram_after if self.vram_after is not None else None
        known = after or before
        return {
            "vram_free_before_bytes": before.free if before is not None else None,
            "vram_free_after_bytes": after.free if after is not None else None,
            "vram_total_bytes": known.total if known is not None else None,
            "vram_freed": self.vram_freed,
            "oom_retries": self.oom_retries,
        }

    async def _consume(
        self,
        graph: Mapping[str, Any],
        output_nodes: tuple[str, ...],
        *,
        publisher: OutputPublisher,
        folders: JobFolders,
        uploads: Uploads,
        deadline: float,
    ) -> None:
        """Follow the prompt to its end; returns early (prompt interrupted if it runs) when the job is a replay.
        The prompt is queued only while this job holds the GPU gate (an exclusive job holds it alone); a prompt
        that runs out of memory before any output is run once more after ComfyUI has unloaded its models."""
        if not await self._clear_stale():
            return
        while True:
            try:
                async with self.runtime.gate.hold(exclusive=self.exclusive):
                    await self._run_prompt(
                        graph, output_nodes, publisher=publisher, folders=folders, uploads=uploads, deadline=deadline
                    )
                return
            except ExecutionFailed as exc:
                details = exc.details
                oom = is_out_of_memory(details.exception_type, details.exception_message)
                if not oom or self.oom_retries or self.outputs_seen:
                    raise
                self.oom_retries += 1
                logger.warning(
                    "ComfyUI ran out of memory at node %s: unloading models and running it once more", details.node_id
                )
                await self.runtime.comfy.free()
                self.vram_freed = True
                self.running_ms = None

    async def _run_prompt(
        self,
        graph: Mapping[str, Any],
        output_nodes: tuple[str, ...],
        *,
        publisher: OutputPublisher,
        folders: JobFolders,
        uploads: Uploads,
        deadline: float,
    ) -> None:
        comfy = self.runtime.comfy
        events = comfy.run_prompt(
            graph,
            self.prompt_id,
            deadline=deadline,
            output_nodes=output_nodes or None,
            front=self.oom_retries > 0,  # a retry goes next, right after the /free it asked for
            before_queue=self._may_queue,
            extra_data=self._extra_data(),
            weights=self.runtime.costs.weights(graph, self.cost_key),
        )
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                now = self.now_ms()
                if isinstance(event, Queued | Adopted):
                    self.queued_ms = now
                    if isinstance(event, Adopted):
                        if await self._replayed():
                            return
                        logger.info("adopted prompt %s (%s) from an earlier attempt", self.prompt_id, event.found)
                elif isinstance(event, Started):
                    self.running_ms = now
                elif isinstance(event, NodeStarted):
                    self.timeline.node_started(event.node, now)
                elif isinstance(event, ProgressUpdate):
                    self._progress(event, now)
                elif isinstance(event, Output):
                    self.outputs_seen += 1
                    uploads.start(
                        functools.partial(self._upload, publisher, folders, event), name=f"upload node {event.node}"
                    )
                elif isinstance(event, Succeeded):
                    # Model files are in no ComfyUI report: found by the names the graph gives them.
                    for saved in await trained_models(graph, folders, self.prompt_id):
                        uploads.start(functools.partial(self._upload, publisher, folders, saved), name="upload model")
                    self.ended_ms = now
                    self.timeline.finished(now)
                    self.runtime.costs.learn(self.cost_key, self.timeline.nodes_ms)
                    if self.running_ms is None:
                        self.running_ms = self.queued_ms
        self.vram_after = asyncio.create_task(self.runtime.vram_now())  # awaited with the uploads' end

    def _extra_data(self) -> dict[str, Any] | None:
        """A UI workflow goes with its prompt as ComfyUI's frontend sends it, so savers embed it in the files."""
        if self.job.workflow_format is GraphFormat.UI:
            return {"extra_pnginfo": {"workflow": self.job.workflow}}
        return None

    def _progress(self, update: ProgressUpdate, now: float) -> None:
        running = round(now - self.running_ms) if self.running_ms is not None else None
        event = progress_event(
            update, job_id=self.job_id, prompt_id=self.prompt_id, elapsed_ms=self.elapsed_ms(), running_ms=running
        )
        if self.throttle.admit(event, now):
            self.emit(event)
        elif self.flush is None and (due := self.throttle.due_ms()) is not None:
            loop = asyncio.get_running_loop()
            self.flush = loop.call_at((due + 1) / 1000, self._flush_progress)

    def _flush_progress(self) -> None:
        self.flush = None
        if self.ended_ms is not None:
            return  # the prompt is over: a held progress event is old news
        event = self.throttle.take_due(self.now_ms())
        if event is not None:
            self.emit(event)
        elif (due := self.throttle.due_ms()) is not None:
            self.flush = asyncio.get_running_loop().call_at((due + 1) / 1000, self._flush_progress)

    async def _upload(self, publisher: OutputPublisher, folders: JobFolders, event: Output) -> None:
        keep_temp = self.job.output.include_temp or event.class_type in RESULT_PREVIEWS
        await folders.bring_outputs(event.node, event.ui, include_temp=keep_temp)
        if self.qa_run is not None:
            self.qa_run.ahead(event.node, event.ui, folders.dirs, include_temp=keep_temp)
        items = await publisher.publish_node(event.node, dict(event.ui), event.title, keep_temp=keep_temp)
        for item in items:
            self._announce(item)
        if self.qa_run is not None:
            await self.qa_run.stored(items)

    def _announce(self, item: OutputItem) -> None:
        self.emit(_output_event(self.job_id, self.prompt_id, item, self.elapsed_ms()))


class _Fail(Exception):
    """The job fails with exactly this error (decided here, not mapped from another exception)."""

    def __init__(self, error: JobError) -> None:
        super().__init__(error.message)
        self.error = error


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _clean_now(files: JobFiles, trees: list[Path]) -> None:
    for problem in files.remove():
        logger.warning("cleanup: %s", problem)
    _remove_trees(trees)


def _remove_trees(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _output_event(job_id: str, prompt_id: str, item: OutputItem, elapsed_ms: int) -> OutputReadyEvent:
    return OutputReadyEvent(job_id=job_id, prompt_id=prompt_id, output=item, elapsed_ms=elapsed_ms)
