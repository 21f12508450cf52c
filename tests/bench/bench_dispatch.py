"""Dispatch figures (a script, never a test): ``.venv/bin/python -m tests.bench.bench_dispatch``.

Prints: messages per second through ``on_queue``'s handler in batches of 10 against moto and the RunPod emulator;
DynamoDB writes per job over its whole happy-path life (progress writes separately); cold import time of the entry
module, and of everything the first invocation imports.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from handlers.contract import JobRecord, JobState, ProgressEvent, ProgressWebhookPayload
from handlers.dispatch._dynamo_store import DynamoJobStore
from handlers.dispatch._jobs import Limits
from handlers.dispatch._provision import provision
from handlers.dispatch._queue_handler import handle_queue
from handlers.dispatch._resources import ResourceNames
from handlers.dispatch._webhook_handler import WebhookHandler
from tests.conftest import REPO
from tests.dispatch.conftest import (
    API_TOKEN,
    FAST_CONFIG,
    PROGRESS_SECRET,
    WEBHOOK_TOKEN,
    AwsStack,
    InTestWorker,
    WebhookFront,
    aws_client,
    job_message,
    make_service,
    sqs_event,
    wait_for,
)
from tests.local.runpod.conftest import serve_emulator


class CountingStore:
    """Counts the store's writes per job, split into state changes and progress-only writes."""

    def __init__(self, inner: DynamoJobStore) -> None:
        self.inner = inner
        self.writes: dict[str, int] = {}
        self.progress_writes: dict[str, int] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create(self, record: JobRecord, message: str) -> JobRecord:
        stored = self.inner.create(record, message)
        with self._lock:
            self.writes[record.job_id] = self.writes.get(record.job_id, 0) + 1
        return stored

    def update(self, record: JobRecord, expected: JobRecord) -> JobRecord:
        stored = self.inner.update(record, expected)
        progress_only = record.progress != expected.progress and record.state is JobState.RUNNING
        with self._lock:
            bucket = self.progress_writes if progress_only else self.writes
            bucket[record.job_id] = bucket.get(record.job_id, 0) + 1
        return stored


def _import_ms(statement: str, runs: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print((time.perf_counter() - t) * 1000)"
    samples = [
        float(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300, help="messages for the throughput figure")
    parser.add_argument("--jobs", type=int, default=20, help="jobs taken through their whole life")
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log would drown the figures

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        names = ResourceNames(table="bench-jobs", queue="bench", dead_letter_queue="bench-dlq", bucket="bench-bucket")
        dynamodb, sqs, s3 = (aws_client(s, endpoint) for s in ("dynamodb", "sqs", "s3"))
        aws = AwsStack(endpoint, names, provision(dynamodb=dynamodb, sqs=sqs, s3=s3, names=names), dynamodb, sqs, s3)
        with serve_emulator(FAST_CONFIG) as emulator, WebhookFront() as front:
            limits = Limits(progress_min_interval_ms=0)
            service, store, runpod, _ = make_service(aws, emulator, front, limits)
            counting = CountingStore(store)
            service.store = counting
            front.handler = WebhookHandler(
                service, webhook_token=WEBHOOK_TOKEN, progress_secrets=[PROGRESS_SECRET], api_token=API_TOKEN
            )

            # 1. Throughput: batches of 10, records of a batch submitted concurrently.
            batches = [
                sqs_event(*[(f"tp-{b}-{i}", job_message(f"tp-{b}-{i}"), 1) for i in range(10)])
                for b in range(args.messages // 10)
            ]
            start = time.perf_counter()
            failures = sum(len(handle_queue(service, batch, concurrency=10)["batchItemFailures"]) for batch in batches)
            elapsed = time.perf_counter() - start
            print(
                f"on_queue throughput: {len(batches) * 10 / elapsed:.1f} messages/s "
                f"({len(batches)} batches of 10 in {elapsed:.2f} s, {failures} failures; moto + RunPod emulator)"
            )

            # 2. Writes per job over a whole happy-path life, with progress events.
            httpx_purge = emulator.client.post("/purge-queue")
            assert httpx_purge.status_code == 200
            ids = [f"life-{n}" for n in range(args.jobs)]
            handle_queue(service, sqs_event(*[(i, job_message(i), 1) for i in ids[:10]]))
            if len(ids) > 10:
                handle_queue(service, sqs_event(*[(i, job_message(i), 1) for i in ids[10:]]))
            for job_id in ids:
                for seq in range(1, 6):
                    event = ProgressEvent(job_id=job_id, percent=seq * 20 - 10, elapsed_ms=seq)
                    service.handle_progress(ProgressWebhookPayload(job_id=job_id, seq=seq, sent_at_ms=1, event=event))
            with InTestWorker(emulator):
                wait_for(
                    lambda: all((r := store.get(i)) is not None and r.state is JobState.SUCCEEDED for i in ids),
                    120,
                    "every job to succeed",
                )
            state_writes = [counting.writes.get(i, 0) for i in ids]
            progress_writes = [counting.progress_writes.get(i, 0) for i in ids]
            print(
                f"DynamoDB writes per job (happy path, state changes): mean {statistics.mean(state_writes):.2f}, "
                f"max {max(state_writes)} (target <= 3)"
            )
            print(
                f"DynamoDB progress writes per job (5 progress events each, no throttle): "
                f"mean {statistics.mean(progress_writes):.2f}"
            )
            runpod.close()
    finally:
        moto.stop()

    # 3. Cold imports, each in a fresh interpreter.
    entry = _import_ms("import handlers.dispatch")
    first_call = _import_ms(
        "import handlers.dispatch, handlers.dispatch._runtime, handlers.dispatch._queue_handler, "
        "handlers.dispatch._dynamo_store, handlers.dispatch._runpod, handlers.dispatch._notify, "
        "handlers.dispatch._validation, boto3"
    )
    print(f"cold import of handlers.dispatch: {entry:.1f} ms (target <= 250 ms)")
    print(
        f"cold import of everything the first invocation loads (boto3, httpx, pydantic, contract): {first_call:.1f} ms"
    )


if __name__ == "__main__":
    main()
