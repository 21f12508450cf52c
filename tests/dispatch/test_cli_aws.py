"""``comfy-relay aws init`` against moto: creates the table, queues and bucket from ``_resources``, idempotently."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from handlers.cli import _aws
from tests.dispatch.conftest import REGION, aws_client


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="comfy-relay")
    _aws.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_aws_init_creates_everything_on_the_named_endpoint(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    argv = [
        "aws",
        "init",
        "--table",
        "cli-jobs",
        "--queue",
        "cli-q",
        "--dlq",
        "cli-dlq",
        "--bucket",
        "cli-bucket",
        "--json",
    ]
    for _ in range(2):  # the second run finds everything in place
        args = _parse(argv)
        assert args.run(args) == 0
    summary = json.loads(capsys.readouterr().out.split("}\n")[-2] + "}")
    assert summary["RELAY_JOBS_TABLE"] == "cli-jobs" and summary["RELAY_S3_BUCKET"] == "cli-bucket"
    sqs = aws_client("sqs", moto_endpoint)
    attributes = sqs.get_queue_attributes(QueueUrl=summary["RELAY_QUEUE_URL"], AttributeNames=["RedrivePolicy"])
    assert "cli-dlq" in attributes["Attributes"]["RedrivePolicy"]
    table = aws_client("dynamodb", moto_endpoint).describe_table(TableName="cli-jobs")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    assert "cli-bucket" in [b["Name"] for b in aws_client("s3", moto_endpoint).list_buckets()["Buckets"]]


def test_aws_init_reports_an_unreachable_endpoint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    args = _parse(["aws", "init", "--table", "t-x"])
    assert args.run(args) == 1
    assert "comfy-relay aws init:" in capsys.readouterr().err


def test_aws_init_without_a_region_says_so_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 11, item 12: boto3 finds no region when the clients are built; that is a one-line error."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    args = _parse(["aws", "init"])
    assert args.run(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("comfy-relay aws init: AWS configuration: no AWS region is configured")
    assert "Traceback" not in err
