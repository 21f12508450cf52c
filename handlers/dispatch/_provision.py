"""Create the resources ``_resources`` defines on whatever endpoint the given clients talk to. Idempotent: what
already exists is left as it is (the queue's attributes and the TTL are brought in line)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from handlers.dispatch._aws_errors import aws_errors, error_code
from handlers.dispatch._resources import (
    ResourceNames,
    bucket_definition,
    queue_attributes,
    table_definition,
    ttl_definition,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

__all__ = ["Provisioned", "provision"]


@dataclass(frozen=True)
class Provisioned:
    table: str
    queue_url: str
    dead_letter_queue_url: str
    bucket: str


def _table(dynamodb: DynamoDBClient, name: str) -> None:
    try:
        dynamodb.create_table(**table_definition(name))
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    with aws_errors("DynamoDB wait for table"):
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    described = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if described.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(**ttl_definition(name))


def _queue(sqs: SQSClient, name: str, attributes: Mapping[Any, str]) -> str:
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:
        if "QueueAlreadyExists" not in error_code(exc) and "QueueNameExists" not in error_code(exc):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def _bucket(s3: S3Client, name: str) -> None:
    definition = bucket_definition(name)
    region = s3.meta.region_name
    try:
        if region in (None, "us-east-1"):
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    except ClientError as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=definition["PublicAccessBlockConfiguration"])
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=definition["LifecycleConfiguration"])


def provision(*, dynamodb: DynamoDBClient, sqs: SQSClient, s3: S3Client, names: ResourceNames) -> Provisioned:
    with aws_errors("aws init"):
        _table(dynamodb, names.table)
        dlq_url = _queue(sqs, names.dead_letter_queue, queue_attributes(None))
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = _queue(sqs, names.queue, queue_attributes(dlq_arn))
        _bucket(s3, names.bucket)
    return Provisioned(table=names.table, queue_url=queue_url, dead_letter_queue_url=dlq_url, bucket=names.bucket)
