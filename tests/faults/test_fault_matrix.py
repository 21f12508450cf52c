"""The fault matrix: queue jobs through dispatch (DynamoDB on moto, the RunPod emulator, webhooks over HTTP) to the
real runpod SDK worker (supervising the ComfyUI emulator, S3 through a proxy), inject one fault per job, drive
redeliveries and the reconciler until every job ends, and check three invariants:

- no job lost: every job ends with a terminal record;
- none run twice: at most one manifest (the commit marker) is ever written per job;
- no false success: a SUCCEEDED record has its manifest and every output in S3, bytes matching their sha256.

Everything is on 127.0.0.1, bounded in jobs and time. ``COMFY_RELAY_FAULTS=long`` runs many random faults; the
default is one job per fault kind. The session prints ``N faults injected, 0 jobs lost, 0 run twice, 0 false
successes``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.common import Backoff
from handlers.contract import JobState, RunPodStatus, is_terminal
from handlers.dispatch._dynamo_store import DynamoJobStore
from handlers.dispatch._jobs import Disposition, JobService, Limits
from handlers.dispatch._notify import MemoryNotifier
from handlers.dispatch._provision import provision
from handlers.dispatch._resources import ResourceNames
from handlers.dispatch._retry import RetryPolicy
from handlers.dispatch._runpod import RunPodClient
from handlers.dispatch._validation import InputValidator
from handlers.dispatch._webhook_handler import WebhookHandler
from tests.conftest import REPO
from tests.dispatch.conftest import WebhookFront, aws_client
from tests.faults.chaos import ChaosProxy, s3_error
from tests.local.runpod.conftest import FAST_CONFIG, Emulator, serve_emulator, wait_for
from tests.worker._relay import RelayWorker, free_port, make_models, mixed_graph, sampler_graph, spawn_relay_worker
from tests.worker._relay import worker_env as relay_worker_env

LONG = os.environ.get("COMFY_RELAY_FAULTS") == "long"
KINDS = (
    "ws_drop",
    "comfyui_killed",
    "s3_flaky",
    "runpod_storm",
    "duplicate_deliveries",
    "dispatcher_crash",
    "forged_webhooks",
    "worker_killed_mid_upload",
)
JOBS = 120 if LONG else len(KINDS)
DEADLINE_S = 900.0 if LONG else 240.0
TOKEN = "fault-matrix-token-0123456789"
SECRET = "fault-matrix-progress-secret"
BUCKET = "faults"

pytestmark = pytest.mark.timeout(int(DEADLINE_S) + 120)

#: The figure, for the session's last line (conftest).
FIGURE: dict[str, int] = {}


class _Crash(BaseException):
    """The dispatcher process dies here (not an Exception: nothing in the service may catch it)."""


@dataclass
class Ledger:
    faults: Counter[str] = field(default_factory=Counter)
    jobs: list[str] = field(default_factory=list)
    redeliver: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class World:
    emulator: Emulator
    runpod_proxy: ChaosProxy
    s3_proxy: ChaosProxy
    comfy_url: str
    service: JobService
    store: DynamoJobStore
    front: WebhookFront
    workdir: Path
    env: dict[str, str]
    worker: RelayWorker | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    workers_spawned: int = 0

    def spawn_worker(self) -> None:
        self.workers_spawned += 1
        workdir = self.workdir / f"worker-{self.workers_spawned}"
        workdir.mkdir()
        self.worker = self.stack.enter_context(spawn_relay_worker(self.emulator, workdir, self.env))

    def kill_worker(self) -> None:
        assert self.worker is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.process.pid, 9)
        self.worker.process.wait(timeout=10)


@pytest.fixture(scope="module")
def world(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("faults")
    names = ResourceNames(table="fault-jobs", queue="fault-jobs", dead_letter_queue="fault-dlq", bucket=BUCKET)
    dynamodb, sqs, s3 = (aws_client(s, moto_endpoint) for s in ("dynamodb", "sqs", "s3"))
    provision(dynamodb=dynamodb, sqs=sqs, s3=s3, names=names)
    # A worker silent for 3 s is lost: its job goes back to the queue (the killed-worker fault).
    config = dataclasses.replace(FAST_CONFIG, worker_lost_after_s=3.0, max_requeues=2)
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(serve_emulator(config))
        runpod_proxy = stack.enter_context(ChaosProxy(emulator.url, seed=1))
        s3_proxy = stack.enter_context(ChaosProxy(moto_endpoint, seed=2))
        s3_proxy.chaos.body = s3_error
        front = stack.enter_context(WebhookFront())
        store = DynamoJobStore(
            names.table, dynamodb=dynamodb, s3=s3, bucket=BUCKET, clock_ms=lambda: int(time.time() * 1000)
        )
        runpod = RunPodClient(
            f"{runpod_proxy.url}/v2",
            config.api_key,
            timeout_s=5.0,
            retry=RetryPolicy(attempts=3, backoff=Backoff(base_s=0.01, cap_s=0.05, min_s=0.0), max_retry_after_s=0.1),
        )
        stack.callback(runpod.close)
        limits = Limits(
            max_attempts=4,
            max_receives=5,
            stale_after_ms=2_000,
            submit_after_ms=2_000,
            claim_timeout_ms=2_000,
            resubmit_backoff=Backoff(base_s=0.0, cap_s=0.0, min_s=0.0),
            progress_min_interval_ms=0,
        )
        service = JobService(
            store,
            runpod,
            endpoint_id=config.endpoint_id,
            webhook_url=f"{front.url}/webhooks/runpod?token={TOKEN}",
            notifier=MemoryNotifier(),
            validator=InputValidator(workflows=REPO / "workflows"),
            limits=limits,
        )
        front.handler = WebhookHandler(service, webhook_token=TOKEN, progress_secrets=[SECRET], api_token="a" * 20)
        comfy_port = free_port()
        comfy_url = f"http://127.0.0.1:{comfy_port}"
        data, models = workdir / "comfy", make_models(workdir / "models")
        command = (
            f"{sys.executable} -m handlers.cli emulate comfyui --port {comfy_port} --data-dir {data} --models {models}"
        )
        env = relay_worker_env(
            emulator,
            workdir,
            comfy_url,
            s3_proxy.url,
            BUCKET,
            COMFYUI_COMMAND=command,
            COMFYUI_OUTPUT_DIR=str(data / "output"),
            COMFYUI_INPUT_DIR=str(data / "input"),
        )
        built = World(emulator, runpod_proxy, s3_proxy, comfy_url, service, store, front, workdir, env)
        stack.enter_context(built.stack)
        built.spawn_worker()
        yield built


def _message(job_id: str, rng: random.Random) -> str:
    graph = sampler_graph(seed=rng.randrange(1, 2**31)) if rng.random() < 0.5 else mixed_graph(f"f{job_id}")
    return json.dumps({"job_id": job_id, "input": {"workflow": graph}})


def _deliver(world: World, ledger: Ledger, message_id: str, body: str, receive: int = 1) -> None:
    """One SQS delivery: a RETRY (or a crash) comes back, as SQS would redeliver it."""
    try:
        outcome = world.service.handle_message(message_id, body, receive)
    except _Crash:
        outcome = Disposition.RETRY
    if outcome is Disposition.RETRY and receive < world.service.limits.max_receives:
        ledger.redeliver.append((message_id, body, receive + 1))


def _comfy_faults(world: World, **faults: Any) -> None:
    wait_for(lambda: _post_ok(f"{world.comfy_url}/_emulator/faults", faults), 60, "the supervised ComfyUI")


def _post_ok(url: str, body: dict[str, Any]) -> bool:
    try:
        return httpx.post(url, json=body, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def _crash_at(service: JobService, step: int) -> Iterator[None]:
    """The dispatcher dies before its ``step``-th call to the store or RunPod (every pair of steps, in turn)."""
    calls = {"n": 0}
    targets = [(service.store, "create"), (service.store, "update"), (service.runpod, "run")]
    originals = [(obj, name, getattr(obj, name)) for obj, name in targets]

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == step:
                raise _Crash
            return original(*args, **kwargs)

        return call

    for obj, name, original in originals:
        setattr(obj, name, wrap(original))
    try:
        yield
    finally:
        for obj, name, original in originals:
            setattr(obj, name, original)


def _webhook(world: World, body: dict[str, Any], token: str = TOKEN) -> None:
    httpx.post(f"{world.front.url}/webhooks/runpod", params={"token": token}, json=body, timeout=10)


def inject(world: World, ledger: Ledger, kind: str, job_id: str, rng: random.Random) -> None:
    body = _message(job_id, rng)
    ledger.faults[kind] += 1
    if kind == "ws_drop":
        _comfy_faults(world, ws_drop_after=rng.randint(1, 6))
        _deliver(world, ledger, f"m-{job_id}", body)
    elif kind == "comfyui_killed":
        body = json.dumps({"job_id": job_id, "input": {"workflow": sampler_graph(seed=rng.randrange(1, 2**31))}})
        _comfy_faults(world, exit_at="KSampler")
        _deliver(world, ledger, f"m-{job_id}", body)
    elif kind == "s3_flaky":
        world.s3_proxy.chaos.fail_fraction, world.s3_proxy.chaos.budget = 0.3, 6
        world.s3_proxy.chaos.statuses = (500, 503)
        _deliver(world, ledger, f"m-{job_id}", body)
    elif kind == "runpod_storm":
        chaos = world.runpod_proxy.chaos
        chaos.statuses, chaos.fail_next = (429, 500, 502, 503), rng.randint(2, 5)
        chaos.only = lambda method, path: "/run" in path or "/status" in path
        _deliver(world, ledger, f"m-{job_id}", body)
    elif kind == "duplicate_deliveries":
        threads = [
            threading.Thread(target=_deliver, args=(world, ledger, f"m-{job_id}", body, 1 + i % 2)) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    elif kind == "dispatcher_crash":
        with _crash_at(world.service, rng.randint(1, 3)):
            _deliver(world, ledger, f"m-{job_id}", body)
    elif kind == "forged_webhooks":
        _deliver(world, ledger, f"m-{job_id}", body)
        record = world.store.get(job_id)
        other = world.emulator.run({"input": {"job_id": "not-" + job_id, "workflow": mixed_graph("forged")}})
        _webhook(world, {"id": other, "status": "COMPLETED", "input": {"job_id": job_id}}, token="wrong-token")
        _webhook(world, {"id": other, "status": "COMPLETED", "input": {"job_id": job_id}, "output": {"job_id": job_id}})
        if record is not None and record.runpod_id is not None:
            # Replayed and reordered: news of the job's own submission out of order.
            for status in (RunPodStatus.IN_PROGRESS, RunPodStatus.FAILED, RunPodStatus.IN_QUEUE):
                _webhook(world, {"id": record.runpod_id, "status": status.value, "input": {"job_id": job_id}})
    elif kind == "worker_killed_mid_upload":
        chaos = world.s3_proxy.chaos
        chaos.hold = lambda method, path: method == "PUT" and f"/{job_id}/" in path
        _deliver(world, ledger, f"m-{job_id}", body)
        wait_for(lambda: chaos.held, 60, f"an upload of {job_id} to start")
        world.kill_worker()
        world.s3_proxy.release()
        world.spawn_worker()
    else:  # pragma: no cover
        raise AssertionError(kind)


def _drive(world: World, ledger: Ledger, deadline: float) -> None:
    """Redeliver what SQS would, run the reconciler, until every job's record is terminal (or the deadline)."""

    def settled() -> bool:
        pending, ledger.redeliver = ledger.redeliver, []
        for message_id, body, receive in pending:
            _deliver(world, ledger, message_id, body, receive)
        world.service.reconcile()
        return all((r := world.store.get(j)) is not None and is_terminal(r.state) for j in ledger.jobs)

    with contextlib.suppress(AssertionError):
        wait_for(settled, max(1.0, deadline - time.monotonic()), "every job to end")


def _check(world: World, ledger: Ledger) -> dict[str, Any]:
    s3 = aws_client("s3", world.env["AWS_ENDPOINT_URL_S3"].replace(world.s3_proxy.url, world.s3_proxy.upstream))
    lost, twice, false_successes, failed = [], [], [], []
    commits = Counter(
        path.split("?")[0].split("/")[-2]
        for method, path, status in world.s3_proxy.chaos.forwarded
        if method == "PUT" and path.split("?")[0].endswith("/manifest.json") and status == 200
    )
    for job_id in ledger.jobs:
        record = world.store.get(job_id)
        if record is None or not is_terminal(record.state):
            lost.append(job_id)
            continue
        if commits[job_id] > 1:
            twice.append(job_id)
        if record.state is JobState.SUCCEEDED:
            if not _really_succeeded(s3, job_id, record.outputs, record.result):
                false_successes.append(job_id)
        else:
            failed.append(f"{job_id}: {record.state.value} {record.error.summary() if record.error else ''}")
    return {"lost": lost, "twice": twice, "false": false_successes, "failed": failed}


def _really_succeeded(s3: Any, job_id: str, outputs: list[Any], result: dict[str, Any] | None) -> bool:
    try:
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"sdk/{job_id}/manifest.json")["Body"].read())
    except Exception:
        return False
    if manifest.get("job_id") != job_id or not outputs or (result is not None and result.get("job_id") != job_id):
        return False
    for item in outputs:
        if item.s3_uri is None:
            continue
        key = item.s3_uri.removeprefix(f"s3://{BUCKET}/")
        try:
            data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except Exception:
            return False
        if item.sha256 is not None and hashlib.sha256(data).hexdigest() != item.sha256:
            return False
    return True


def test_fault_matrix(world: World) -> None:
    rng = random.Random(1111)
    ledger = Ledger()
    deadline = time.monotonic() + DEADLINE_S
    for i in range(JOBS):
        kind = KINDS[i % len(KINDS)] if not LONG else rng.choice(KINDS)
        job_id = f"fault-{i:03d}-{kind.replace('_', '-')}"
        ledger.jobs.append(job_id)
        inject(world, ledger, kind, job_id, rng)
        if LONG and i % 8 == 7:
            _drive(world, ledger, min(deadline, time.monotonic() + 120))
    _drive(world, ledger, deadline)
    outcome = _check(world, ledger)
    injected = sum(ledger.faults.values())
    FIGURE.update(
        injected=injected, lost=len(outcome["lost"]), twice=len(outcome["twice"]), false=len(outcome["false"])
    )
    line = (
        f"{injected} faults injected, {len(outcome['lost'])} jobs lost, {len(outcome['twice'])} run twice, "
        f"{len(outcome['false'])} false successes"
    )
    print(f"\n{line}\nby kind: {dict(ledger.faults)}\nfailed with an error (not lost): {outcome['failed']}")
    assert (outcome["lost"], outcome["twice"], outcome["false"]) == ([], [], []), (line, outcome)
