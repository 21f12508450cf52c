"""``comfy-relay enqueue`` and ``comfy-relay jobs watch``: the dispatch side, through its queue and its job records.

``enqueue`` sends one queue message (``{"job_id", "input", ...}``, checked here first) to the job queue: the queue
URL comes from ``--queue-url``, ``$RELAY_QUEUE_URL``, or the local stack. ``jobs watch`` follows job records in the
DynamoDB jobs table (``--table``, ``$RELAY_JOBS_TABLE``, or the local stack's) in a live table: given job ids, until
they all end (exit 0 only if they all succeeded); without, the most recently updated jobs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from handlers.cli._console import console, error_console
from handlers.cli._qa_text import qa_summary
from handlers.cli._run import job_input_arguments
from handlers.cli._state_dir import add_state_dir_argument, no_stack_message, state_dir

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["TERMINAL_RECORD_STATES", "record_row", "register"]

TERMINAL_RECORD_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "REJECTED"})
_WATCH_LIMIT = 20
#: How long `jobs watch` (no ids, nothing open) looks for a job about to appear before it shows the table and exits.
_NEW_JOB_GRACE_S = 3.0
_STATE_STYLES = {"SUCCEEDED": "green", "FAILED": "red", "REJECTED": "red", "TIMED_OUT": "red", "CANCELLED": "yellow"}


class _Unconfigured(Exception):
    pass


def _local_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--local", action="store_true", help="use the local stack even if AWS variables are set")
    add_state_dir_argument(parser)


def register(commands: Any) -> None:
    enqueue: argparse.ArgumentParser = commands.add_parser(
        "enqueue",
        help="send a job to the dispatch queue (SQS)",
        description="Send one job message to the job queue; on_queue validates it, records it and submits it. "
        "Prints the job id that `status`, `cancel` and `jobs watch` take.",
        epilog='example:\n  comfy-relay enqueue image/sdxl-basic -p prompt="a fox" --job-id order-1234 --wait',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    job_input_arguments(enqueue)
    enqueue.add_argument(
        "--job-id", help="the job's id and idempotency key: the same id never runs twice (default: the message id)"
    )
    enqueue.add_argument(
        "--priority",
        choices=["low", "normal", "high"],
        default=None,
        help="low: RunPod's lowPriority policy (the job yields to others on the endpoint); default normal",
    )
    enqueue.add_argument("--queue-url", default=None, help="default: $RELAY_QUEUE_URL, else the local stack's")
    enqueue.add_argument(
        "--wait", action="store_true", help="follow the job's record with a progress bar until it ends"
    )
    enqueue.add_argument("--timeout", type=float, default=600.0, metavar="S", help="how long --wait waits (600)")
    enqueue.add_argument("--json", action="store_true", help="print one JSON document on stdout, nothing else")
    _local_arguments(enqueue)
    enqueue.set_defaults(run=_enqueue)

    jobs = commands.add_parser("jobs", help="job records of the dispatch side (DynamoDB)")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    watch = actions.add_parser(
        "watch",
        help="follow job records live",
        description="Follow job records in a live table. Given JOBs: until they all end (exit 0 only if all "
        "succeeded). Without: the most recent jobs, until every job that was open while watching has ended "
        "(--follow: until Ctrl-C).",
    )
    watch.add_argument("job_ids", nargs="*", metavar="JOB", help="queue job ids to follow until they end")
    watch.add_argument("--follow", action="store_true", help="without JOB: keep watching until Ctrl-C or --timeout")
    watch.add_argument("--table", default=None, help="default: $RELAY_JOBS_TABLE, else the local stack's")
    watch.add_argument("--interval", type=float, default=0.5, metavar="S", help="seconds between reads (0.5)")
    watch.add_argument("--timeout", type=float, default=600.0, metavar="S", help="give up after (600)")
    watch.add_argument("--once", action="store_true", help="print the records once and exit")
    watch.add_argument("--json", action="store_true", help="print each record as a JSON line when it changes")
    _local_arguments(watch)
    watch.set_defaults(run=_watch)


def _aws(args: argparse.Namespace, service: Literal["sqs", "dynamodb"], setting: str) -> tuple[Any, str]:
    """A boto3 client and the named setting (queue URL or table): from the flags and environment, else from the
    local stack (whose moto endpoint and credentials are used)."""
    from handlers.cli._aws import stack_client  # noqa: PLC0415
    from handlers.local.stack import read_state  # noqa: PLC0415

    explicit = getattr(args, "queue_url" if setting == "RELAY_QUEUE_URL" else "table", None)
    if not args.local and (explicit or os.environ.get(setting)):
        return stack_client({}, service), explicit or os.environ[setting]
    info = read_state(state_dir(args))
    if info is None:
        raise _Unconfigured(
            f"{no_stack_message(args)}: set {setting} (and the AWS variables), "
            "or start the local stack with `comfy-relay local up`"
        )
    env = info.client_env
    if setting not in env:
        raise _Unconfigured(f"the local stack has no {setting}: it runs without the dispatch side")
    return stack_client(env, service), explicit or env[setting]


def _enqueue(args: argparse.Namespace) -> int:
    from pydantic import ValidationError  # noqa: PLC0415

    from handlers.cli._follow import print_job_error  # noqa: PLC0415
    from handlers.cli._job_input import JobInputError, job_input_from_args  # noqa: PLC0415
    from handlers.contract import JobError, QueueMessage, derive_job_id, validation_problems  # noqa: PLC0415

    err = error_console()
    try:
        job_input = job_input_from_args(args)
        message: dict[str, Any] = {"input": job_input}
        if args.job_id:
            message["job_id"] = args.job_id
        if args.priority:
            message["priority"] = args.priority
        try:
            QueueMessage.model_validate(message)
        except ValidationError as exc:
            raise JobInputError(JobError.from_problems(validation_problems(exc, root=""))) from None
    except JobInputError as exc:
        print_job_error(err, exc.error.model_dump(mode="json", exclude_none=True), prefix="message rejected")
        return 2
    try:
        sqs, queue_url = _aws(args, "sqs", "RELAY_QUEUE_URL")
        sent = sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message, separators=(",", ":")))
    except _Unconfigured as exc:
        err.print(f"comfy-relay enqueue: {exc}", markup=False)
        return 1
    except Exception as exc:  # botocore's errors (no credentials, unknown queue, network): one line, no traceback
        err.print(f"comfy-relay enqueue: sending to the queue failed: {exc}", markup=False)
        return 1
    job_id = args.job_id or derive_job_id(sent["MessageId"])
    if args.wait:
        from handlers.cli._run import wait_for_job  # noqa: PLC0415

        if not args.json:
            console().print(f"enqueued job {job_id} on {queue_url}", markup=False)
        return asyncio.run(wait_for_job(args, job_id, label=args.target))
    answer = {"job_id": job_id, "message_id": sent["MessageId"], "queue_url": queue_url}
    if args.json:
        sys.stdout.write(json.dumps(answer) + "\n")
    else:
        console().print(f"enqueued job {job_id} on {queue_url}", markup=False)
        console().print(f"follow it with `comfy-relay status {job_id} --wait`", markup=False)
    return 0


def record_row(record: Mapping[str, Any]) -> list[str]:
    """One table row: job, state, attempt, progress, outputs, QA, error."""
    progress = record.get("progress") if isinstance(record.get("progress"), Mapping) else None
    shown = ""
    if progress is not None:
        shown = f"{float(progress.get('percent', 0.0)):5.1f}%"
        if progress.get("node_title"):
            shown += f" {progress['node_title']}"
        if progress.get("step") is not None and progress.get("step_max"):
            shown += f" {progress['step']}/{progress['step_max']}"
    error = record.get("error") if isinstance(record.get("error"), Mapping) else None
    return [
        str(record.get("job_id", "")),
        str(record.get("state", "")),
        str(record.get("attempt", "")),
        shown,
        str(len(record.get("outputs") or [])),
        qa_summary(record["qa"]) if isinstance(record.get("qa"), Mapping) else "",
        f"{error.get('code')}: {error.get('message')}" if error else "",
    ]


def _table(records: list[dict[str, Any]]) -> Table:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="job records", expand=False)
    for column in ("job", "state", "attempt", "progress", "outputs", "qa", "error"):
        table.add_column(column, overflow="fold")
    for record in records:
        row = record_row(record)
        style = _STATE_STYLES.get(row[1])
        table.add_row(*row, style=style)
    return table


def _read(dynamodb: Any, table: str, job_ids: list[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if job_ids:
        for job_id in job_ids:
            answer = dynamodb.get_item(TableName=table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
            item = answer.get("Item")
            items.append(item if item else {"record": {"S": json.dumps({"job_id": job_id, "state": "(no record)"})}})
    else:
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="#r", ExpressionAttributeNames={"#r": "record"}
        )
        for page in pages:
            items.extend(page.get("Items", []))
    records = [json.loads(item["record"]["S"]) for item in items if "record" in item]
    if not job_ids:
        records.sort(key=lambda r: r.get("updated_at_ms", 0), reverse=True)
        records = records[:_WATCH_LIMIT]
    return records


def _watch(args: argparse.Namespace) -> int:
    from rich.live import Live  # noqa: PLC0415

    err = error_console()
    try:
        dynamodb, table = _aws(args, "dynamodb", "RELAY_JOBS_TABLE")
    except _Unconfigured as exc:
        err.print(f"comfy-relay jobs watch: {exc}", markup=False)
        return 1
    try:
        records = _read(dynamodb, table, args.job_ids)
    except Exception as exc:  # botocore: missing table, credentials, network
        err.print(f"comfy-relay jobs watch: reading table {table} failed: {exc}", markup=False)
        return 1

    seen_open: set[str] = set()
    started = time.monotonic()

    def finished(current: list[dict[str, Any]]) -> bool:
        if args.job_ids:
            return all(r.get("state") in TERMINAL_RECORD_STATES for r in current)
        if args.follow:
            return False
        # Without ids: until every job seen open while watching has ended. With none open, a short look for one
        # that is about to appear (an `enqueue` just sent, not yet read from the queue), then the table as it is.
        states = {str(r.get("job_id")): r.get("state") for r in current}
        seen_open.update(job for job, state in states.items() if state not in TERMINAL_RECORD_STATES)
        if not seen_open:
            return time.monotonic() - started >= _NEW_JOB_GRACE_S
        return all(states.get(job, "SUCCEEDED") in TERMINAL_RECORD_STATES for job in seen_open)

    def outcome(current: list[dict[str, Any]]) -> int:
        if args.job_ids and not all(r.get("state") == "SUCCEEDED" for r in current):
            return 1
        return 0

    if args.json:
        seen: dict[str, int] = {}
        deadline = time.monotonic() + args.timeout
        while True:
            for record in records:
                key = str(record.get("job_id"))
                if seen.get(key) != record.get("version", -1):
                    seen[key] = int(record.get("version", -1))
                    sys.stdout.write(json.dumps(record) + "\n")
                    sys.stdout.flush()
            if args.once or finished(records) or time.monotonic() >= deadline:
                return outcome(records)
            time.sleep(args.interval)
            records = _read(dynamodb, table, args.job_ids)
    out = console()
    if args.once:
        out.print(_table(records))
        return outcome(records)
    deadline = time.monotonic() + args.timeout
    with Live(_table(records), console=out, refresh_per_second=8) as live:
        while not finished(records) and time.monotonic() < deadline:
            time.sleep(args.interval)
            records = _read(dynamodb, table, args.job_ids)
            live.update(_table(records))
    return outcome(records)
