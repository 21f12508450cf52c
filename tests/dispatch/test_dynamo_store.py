"""The DynamoDB job store on moto (real HTTP): conditional writes carry the winning item, indexes, TTL, large
messages in S3, and ``aws init``'s resources."""

from __future__ import annotations

import json

import pytest

from handlers.contract import JobRecord, JobState
from handlers.dispatch._dynamo_store import INPUT_PREFIX, DynamoJobStore
from handlers.dispatch._errors import RecordExistsError, StaleRecordError, StoreUnavailable, UsageError
from handlers.dispatch._provision import provision
from handlers.dispatch._resources import MAX_RECEIVE_COUNT
from tests.dispatch.conftest import AwsStack, aws_client
from tests.dispatch.helpers import Clock


def _store(aws: AwsStack, clock: Clock, inline: int = 300_000) -> DynamoJobStore:
    return DynamoJobStore(
        aws.names.table,
        dynamodb=aws.dynamodb,
        s3=aws.s3,
        bucket=aws.names.bucket,
        clock_ms=clock,
        inline_message_bytes=inline,
    )


def _record(clock: Clock, job_id: str = "job-1", **changes: object) -> JobRecord:
    fields: dict[str, object] = {
        "job_id": job_id,
        "state": JobState.ACCEPTED,
        "input_digest": "sha256:x",
        "created_at_ms": clock.now_ms,
        "updated_at_ms": clock.now_ms,
        "expires_at": clock.now_ms // 1000 + 3600,
    }
    fields.update(changes)
    return JobRecord.model_validate(fields)


def _bump(record: JobRecord, **changes: object) -> JobRecord:
    return record.model_copy(update={"version": record.version + 1, **changes})


def test_create_is_conditional_and_carries_the_existing_item(aws: AwsStack) -> None:
    clock = Clock()
    store = _store(aws, clock)
    store.create(_record(clock), '{"m": 1}')
    with pytest.raises(RecordExistsError) as caught:
        store.create(_record(clock, state=JobState.REJECTED), '{"m": 2}')
    assert caught.value.existing is not None and caught.value.existing.state is JobState.ACCEPTED
    assert store.load_message(store.get("job-1")) == '{"m": 1}'  # type: ignore[arg-type]


def test_update_expects_state_and_version(aws: AwsStack) -> None:
    clock = Clock()
    store = _store(aws, clock)
    first = store.create(_record(clock), "{}")
    submitted = store.update(_bump(first, state=JobState.SUBMITTED, runpod_id="rp-1", attempt=1), first)
    assert store.get("job-1") == submitted
    with pytest.raises(StaleRecordError) as caught:
        store.update(_bump(first, state=JobState.REJECTED), first)
    assert caught.value.existing == submitted
    assert store.find_by_runpod_id("rp-1") == submitted
    done = store.update(_bump(submitted, state=JobState.SUCCEEDED), submitted)
    assert store.get("job-1") == done
    # Terminal jobs leave the open-state index; the RunPod id index still finds them.
    assert store.stale_open_jobs(JobState.SUBMITTED, clock.now_ms + 1, 10) == []
    assert store.find_by_runpod_id("rp-1") == done


def test_open_jobs_index_by_state_and_age(aws: AwsStack) -> None:
    clock = Clock()
    store = _store(aws, clock)
    for n in range(3):
        store.create(_record(clock, f"job-{n}"), "{}")
        clock.advance(1_000)
    stale = store.stale_open_jobs(JobState.ACCEPTED, clock.now_ms - 2_000, 10)
    assert [r.job_id for r in stale] == ["job-0", "job-1"]
    assert [r.job_id for r in store.stale_open_jobs(JobState.ACCEPTED, clock.now_ms, 1)] == ["job-0"]
    assert store.stale_open_jobs(JobState.RUNNING, clock.now_ms, 10) == []


def test_expired_records_are_invisible_and_replaceable(aws: AwsStack) -> None:
    clock = Clock()
    store = _store(aws, clock)
    store.create(_record(clock, expires_at=clock.now_ms // 1000 + 10), "{}")
    assert store.get("job-1") is not None
    clock.advance(10_000)
    # moto (like DynamoDB for up to days) still holds the item: reads must filter on the TTL themselves.
    item = aws.dynamodb.get_item(TableName=aws.names.table, Key={"job_id": {"S": "job-1"}})
    assert "Item" in item
    assert store.get("job-1") is None
    assert store.stale_open_jobs(JobState.ACCEPTED, clock.now_ms, 10) == []
    store.create(_record(clock), '{"again": true}')
    assert store.get("job-1") is not None


def test_large_messages_go_to_s3(aws: AwsStack) -> None:
    clock = Clock()
    store = _store(aws, clock, inline=1_000)
    big = json.dumps({"input": "x" * 5_000})
    stored = store.create(_record(clock), big)
    assert stored.input_s3_uri == f"s3://{aws.names.bucket}/{INPUT_PREFIX}job-1.json"
    item = aws.dynamodb.get_item(TableName=aws.names.table, Key={"job_id": {"S": "job-1"}})["Item"]
    assert "message" not in item
    assert store.load_message(stored) == big


def test_missing_table_and_unreachable_endpoint_are_translated(aws: AwsStack) -> None:
    clock = Clock()
    missing = DynamoJobStore("no-such-table", dynamodb=aws.dynamodb, s3=aws.s3, bucket="b", clock_ms=clock)
    with pytest.raises(UsageError):
        missing.get("job-1")
    dead = aws_client("dynamodb", "http://127.0.0.1:9")
    unreachable = DynamoJobStore("t", dynamodb=dead, s3=aws.s3, bucket="b", clock_ms=clock)
    with pytest.raises(StoreUnavailable):
        unreachable.get("job-1")


def test_aws_init_resources(aws: AwsStack) -> None:
    table = aws.dynamodb.describe_table(TableName=aws.names.table)["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"by-open-state", "by-runpod-id"}
    ttl = aws.dynamodb.describe_time_to_live(TableName=aws.names.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    attributes = aws.sqs.get_queue_attributes(QueueUrl=aws.provisioned.queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    assert redrive["deadLetterTargetArn"].endswith(aws.names.dead_letter_queue)
    assert aws.s3.get_public_access_block(Bucket=aws.names.bucket)["PublicAccessBlockConfiguration"]["BlockPublicAcls"]
    # Idempotent: running it again changes nothing and fails on nothing.
    again = provision(dynamodb=aws.dynamodb, sqs=aws.sqs, s3=aws.s3, names=aws.names)
    assert again == aws.provisioned
