"""The DynamoDB job store: one item per job, every write conditional, large messages in S3.

Item layout (low-level attribute values, so no float/Decimal round trips):

- ``job_id`` (key), ``record`` (the ``JobRecord`` as JSON: the one source of truth for readers),
- copies of the fields conditions and indexes need: ``state``, ``version``, ``updated_at_ms``, ``expires_at``
  (the TTL), ``open_state`` (only while the job is not finished: a sparse index for the reconciler) and
  ``runpod_id`` (only once submitted: a sparse index for webhooks),
- ``message``: the queue message JSON, or nothing when it was larger than the inline limit and went to S3
  (``record.input_s3_uri`` points at it). DynamoDB items max out at 400 KB.

Updates use ``UpdateItem`` and never rewrite ``message``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from handlers.contract import JobRecord, JobState, is_terminal
from handlers.dispatch._aws_errors import aws_errors, error_code, translate
from handlers.dispatch._errors import ConditionFailed, RecordExistsError, StaleRecordError
from handlers.dispatch._resources import BY_OPEN_STATE_INDEX, BY_RUNPOD_ID_INDEX, INPUT_PREFIX, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

__all__ = ["INPUT_PREFIX", "DynamoJobStore"]


# Named clauses: every write states what it expects of the item it replaces.
_NAMES: Final = {
    "#job_id": "job_id",
    "#record": "record",
    "#state": "state",
    "#version": "version",
    "#updated": "updated_at_ms",
    "#expires": TTL_ATTRIBUTE,
    "#open": "open_state",
    "#runpod": "runpod_id",
}
#: The placeholder of each attribute an update may set or remove (``updated_at_ms`` -> ``#updated``).
_PLACEHOLDERS: Final = {attribute: placeholder for placeholder, attribute in _NAMES.items()}
_ID_IS_FREE: Final = "attribute_not_exists(#job_id) OR #expires <= :now_s"
_STILL_EXPECTED: Final = "#state = :expected_state AND #version = :expected_version AND #expires > :now_s"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


class DynamoJobStore:
    def __init__(
        self,
        table: str,
        *,
        dynamodb: DynamoDBClient,
        s3: S3Client,
        bucket: str,
        clock_ms: Callable[[], int],
        inline_message_bytes: int = 300_000,
    ) -> None:
        self._table = table
        self._db = dynamodb
        self._s3 = s3
        self._bucket = bucket
        self._clock_ms = clock_ms
        self._inline = inline_message_bytes

    # -- reading items ---------------------------------------------------------------------------------------

    def _now_s(self) -> int:
        return self._clock_ms() // 1000

    def _decode(self, item: Mapping[str, Any] | None) -> JobRecord | None:
        """The record of an item, or ``None`` if there is none or it expired (DynamoDB deletes lazily)."""
        if not item or "record" not in item:
            return None
        record = JobRecord.model_validate_json(item["record"]["S"])
        if record.expires_at <= self._now_s():
            return None
        return record

    @contextlib.contextmanager
    def _conditional(self, what: str, kind: type[ConditionFailed], message: str) -> Iterator[None]:
        """``aws_errors`` for a conditional write: a failed condition becomes ``kind``, carrying the item."""
        try:
            yield
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise translate(exc, what) from exc
            # ALL_OLD: the item that made the condition fail, so the caller decides without another read.
            raise kind(message, self._decode(exc.response.get("Item"))) from None  # type: ignore[arg-type]
        except BotoCoreError as exc:
            raise translate(exc, what) from exc

    # -- the JobStore interface ------------------------------------------------------------------------------

    def create(self, record: JobRecord, message: str) -> JobRecord:
        encoded = message.encode()
        item: dict[str, Any] = {}
        if len(encoded) > self._inline:
            key = f"{INPUT_PREFIX}{record.job_id}.json"
            with aws_errors("S3 PutObject (job message)"):
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=encoded, ContentType="application/json")
            record = record.model_copy(update={"input_s3_uri": f"s3://{self._bucket}/{key}"})
        else:
            item["message"] = _s(message)
        item.update(self._attributes(record))
        with self._conditional("DynamoDB PutItem", RecordExistsError, f"job {record.job_id} exists"):
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=_ID_IS_FREE,
                ExpressionAttributeNames={"#job_id": "job_id", "#expires": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":now_s": _n(self._now_s())},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return record

    def get(self, job_id: str) -> JobRecord | None:
        with aws_errors("DynamoDB GetItem"):
            answer = self._db.get_item(
                TableName=self._table,
                Key={"job_id": _s(job_id)},
                ProjectionExpression="#record",
                ExpressionAttributeNames={"#record": "record"},
                ConsistentRead=True,
            )
        return self._decode(answer.get("Item"))

    def update(self, record: JobRecord, expected: JobRecord) -> JobRecord:
        if record.version != expected.version + 1 or record.job_id != expected.job_id:
            raise ValueError("an update must bump the version of the same job by one")
        values: dict[str, Any] = {
            ":expected_state": _s(expected.state.value),
            ":expected_version": _n(expected.version),
            ":now_s": _n(self._now_s()),
        }
        attributes = self._attributes(record)
        del attributes["job_id"]
        sets = [f"{_PLACEHOLDERS[name]} = :{name}" for name in attributes]
        values.update({f":{name}": value for name, value in attributes.items()})
        removes = [_PLACEHOLDERS[name] for name in ("open_state", "runpod_id") if name not in attributes]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        with self._conditional("DynamoDB UpdateItem", StaleRecordError, f"job {record.job_id} changed meanwhile"):
            self._db.update_item(
                TableName=self._table,
                Key={"job_id": _s(record.job_id)},
                UpdateExpression=expression,
                ConditionExpression=_STILL_EXPECTED,
                ExpressionAttributeNames={k: v for k, v in _NAMES.items() if k != "#job_id"},
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return record

    def find_by_runpod_id(self, runpod_id: str) -> JobRecord | None:
        with aws_errors("DynamoDB Query (by RunPod id)"):
            answer = self._db.query(
                TableName=self._table,
                IndexName=BY_RUNPOD_ID_INDEX,
                KeyConditionExpression="#runpod = :runpod",
                ExpressionAttributeNames={"#runpod": "runpod_id"},
                ExpressionAttributeValues={":runpod": _s(runpod_id)},
                Limit=2,
            )
        for item in answer.get("Items", []):
            # The index is eventually consistent and keys-only: read the record itself, consistently.
            record = self.get(item["job_id"]["S"])
            if record is not None and record.runpod_id == runpod_id:
                return record
        return None

    def stale_open_jobs(self, state: JobState, updated_before_ms: int, limit: int) -> list[JobRecord]:
        if is_terminal(state):
            return []
        found: list[JobRecord] = []
        start: dict[str, Any] | None = None
        while len(found) < limit:
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": BY_OPEN_STATE_INDEX,
                "KeyConditionExpression": "#open = :state AND #updated <= :before",
                "FilterExpression": "#expires > :now_s",
                "ExpressionAttributeNames": {
                    "#open": "open_state",
                    "#updated": "updated_at_ms",
                    "#expires": TTL_ATTRIBUTE,
                },
                "ExpressionAttributeValues": {
                    ":state": _s(state.value),
                    ":before": _n(updated_before_ms),
                    ":now_s": _n(self._now_s()),
                },
                "Limit": limit,
            }
            if start is not None:
                arguments["ExclusiveStartKey"] = start
            with aws_errors("DynamoDB Query (open jobs)"):
                answer = self._db.query(**arguments)
            for item in answer.get("Items", []):
                record = self._decode(item)
                if record is not None and record.state is state:
                    found.append(record)
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
        return found[:limit]

    def load_message(self, record: JobRecord) -> str | None:
        if record.input_s3_uri is not None:
            bucket, _, key = record.input_s3_uri.removeprefix("s3://").partition("/")
            try:
                body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if error_code(exc) in {"NoSuchKey", "404"}:
                    return None
                raise translate(exc, "S3 GetObject (job message)") from exc
            except BotoCoreError as exc:
                raise translate(exc, "S3 GetObject (job message)") from exc
            return body.decode()
        with aws_errors("DynamoDB GetItem (job message)"):
            answer = self._db.get_item(
                TableName=self._table,
                Key={"job_id": _s(record.job_id)},
                ProjectionExpression="#message",
                ExpressionAttributeNames={"#message": "message"},
                ConsistentRead=True,
            )
        item = answer.get("Item") or {}
        return item["message"]["S"] if "message" in item else None

    # -- helpers ---------------------------------------------------------------------------------------------

    @staticmethod
    def _attributes(record: JobRecord) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "job_id": _s(record.job_id),
            "record": _s(record.model_dump_json(exclude_none=True)),
            "state": _s(record.state.value),
            "version": _n(record.version),
            "updated_at_ms": _n(record.updated_at_ms),
            TTL_ATTRIBUTE: _n(record.expires_at),
        }
        if not is_terminal(record.state):
            attributes["open_state"] = _s(record.state.value)
        if record.runpod_id is not None:
            attributes["runpod_id"] = _s(record.runpod_id)
        return attributes
