"""``comfy-relay aws init``: create the jobs table (keys, indexes, TTL), the job queue with its dead-letter queue
and redrive policy, and the bucket, on whatever endpoint the AWS variables name (``AWS_ENDPOINT_URL`` for moto).

The definitions are ``handlers.dispatch.ResourceNames``: the same data the infrastructure template is generated from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any, Literal


def stack_client(env: Mapping[str, str], service: Literal["dynamodb", "s3", "sqs"]) -> Any:
    """A boto3 client for the AWS variables in ``env`` (a local stack's: moto's endpoint and test credentials);
    with ``env`` empty, boto3's own configuration."""
    import boto3  # noqa: PLC0415  (registration stays light)

    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("AWS_DEFAULT_REGION"),
    )
    return session.client(service, endpoint_url=env.get("AWS_ENDPOINT_URL"))


def _run(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415  (registration stays light)

    from handlers.dispatch import DispatchError, ResourceNames, aws_errors, provision  # noqa: PLC0415

    names = ResourceNames(table=args.table, queue=args.queue, dead_letter_queue=args.dlq, bucket=args.bucket)
    try:
        # Building the clients is where boto3 finds no region: the same translation as every other AWS call.
        with aws_errors("AWS configuration"):
            session = boto3.session.Session()
            dynamodb, sqs, s3 = session.client("dynamodb"), session.client("sqs"), session.client("s3")
        done = provision(dynamodb=dynamodb, sqs=sqs, s3=s3, names=names)
    except DispatchError as exc:
        print(f"comfy-relay aws init: {exc}", file=sys.stderr)
        return 1
    summary = {
        "RELAY_JOBS_TABLE": done.table,
        "RELAY_S3_BUCKET": done.bucket,
        "RELAY_QUEUE_URL": done.queue_url,
        "RELAY_DLQ_URL": done.dead_letter_queue_url,
    }
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        for name, value in summary.items():
            print(f"export {name}={value}")
    return 0


def register(commands: Any) -> None:
    aws: argparse.ArgumentParser = commands.add_parser("aws", help="AWS resources for the dispatch side")
    actions = aws.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = actions.add_parser(
        "init", help="create the jobs table, the queue with its dead-letter queue, and the bucket (idempotent)"
    )
    environ = os.environ
    init.add_argument("--table", default=environ.get("RELAY_JOBS_TABLE", "comfy-relay-jobs"), help="jobs table")
    init.add_argument("--queue", default="comfy-relay-jobs", help="job queue name")
    init.add_argument("--dlq", default="comfy-relay-jobs-dlq", help="dead-letter queue name")
    init.add_argument("--bucket", default=environ.get("RELAY_S3_BUCKET", "comfy-relay"), help="bucket name")
    init.add_argument("--json", action="store_true", help="print the names and URLs as JSON")
    init.set_defaults(run=_run)
