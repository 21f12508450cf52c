"""The AWS resources dispatch needs, as data: the jobs table (keys, indexes, TTL), the job queue with its dead-letter
queue and redrive policy, and the bucket.

``comfy-relay aws init`` creates them on whatever endpoint the AWS variables name (moto locally), and the
infrastructure template generator reads the same definitions, so the two never drift apart. Only plain data and
pure functions here: no boto3 import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "BY_OPEN_STATE_INDEX",
    "BY_RUNPOD_ID_INDEX",
    "DLQ_RETENTION_S",
    "INPUT_PREFIX",
    "MAX_RECEIVE_COUNT",
    "MESSAGE_RETENTION_S",
    "QUEUE_FUNCTION_TIMEOUT_S",
    "TTL_ATTRIBUTE",
    "VISIBILITY_TIMEOUT_S",
    "ResourceNames",
    "bucket_definition",
    "queue_attributes",
    "table_definition",
    "ttl_definition",
]

#: Sparse index of jobs that are not finished: ``open_state`` (set only while open) + ``updated_at_ms``.
BY_OPEN_STATE_INDEX: Final = "by-open-state"
#: Sparse index from RunPod's job id to ours: ``runpod_id`` is set once a job was submitted.
BY_RUNPOD_ID_INDEX: Final = "by-runpod-id"
#: Deliveries of one message before SQS moves it to the dead-letter queue.
MAX_RECEIVE_COUNT: Final = 5
#: The queue handler's Lambda timeout; AWS wants the queue's visibility timeout at least 6x the function's.
QUEUE_FUNCTION_TIMEOUT_S: Final = 60
VISIBILITY_TIMEOUT_S: Final = 6 * QUEUE_FUNCTION_TIMEOUT_S
MESSAGE_RETENTION_S: Final = 4 * 24 * 3600
DLQ_RETENTION_S: Final = 14 * 24 * 3600
#: Where job messages too large for a DynamoDB item are kept; they expire with the records that point at them.
INPUT_PREFIX: Final = "dispatch/inputs/"
#: The TTL attribute (unix seconds). DynamoDB deletes expired items lazily, so reads filter on it too.
TTL_ATTRIBUTE: Final = "expires_at"


@dataclass(frozen=True, kw_only=True)
class ResourceNames:
    table: str = "comfy-relay-jobs"
    queue: str = "comfy-relay-jobs"
    dead_letter_queue: str = "comfy-relay-jobs-dlq"
    bucket: str = "comfy-relay"


def table_definition(name: str) -> dict[str, Any]:
    """``CreateTable`` arguments (also the CloudFormation ``AWS::DynamoDB::Table`` properties, modulo casing)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "job_id", "AttributeType": "S"},
            {"AttributeName": "open_state", "AttributeType": "S"},
            {"AttributeName": "updated_at_ms", "AttributeType": "N"},
            {"AttributeName": "runpod_id", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": BY_OPEN_STATE_INDEX,
                "KeySchema": [
                    {"AttributeName": "open_state", "KeyType": "HASH"},
                    {"AttributeName": "updated_at_ms", "KeyType": "RANGE"},
                ],
                # The reconciler needs the whole record, not just keys: one query, no follow-up reads.
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["record", TTL_ATTRIBUTE],
                },
            },
            {
                "IndexName": BY_RUNPOD_ID_INDEX,
                "KeySchema": [{"AttributeName": "runpod_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    }


def ttl_definition(name: str) -> dict[str, Any]:
    """``UpdateTimeToLive`` arguments."""
    return {"TableName": name, "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}}


def queue_attributes(dead_letter_arn: str | None) -> dict[str, str]:
    """``CreateQueue`` attributes of the job queue (``None``: the dead-letter queue itself)."""
    if dead_letter_arn is None:
        return {"MessageRetentionPeriod": str(DLQ_RETENTION_S)}
    redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    return {
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
        "MessageRetentionPeriod": str(MESSAGE_RETENTION_S),
        "RedrivePolicy": json.dumps(redrive),
    }


def bucket_definition(name: str) -> dict[str, Any]:
    """The bucket's settings: private, large job inputs expire with the records that point at them."""
    return {
        "Bucket": name,
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
        "LifecycleConfiguration": {
            "Rules": [
                {
                    "ID": "dispatch-inputs",
                    "Filter": {"Prefix": INPUT_PREFIX},
                    "Status": "Enabled",
                    "Expiration": {"Days": 30},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    }
