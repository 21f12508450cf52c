"""The worker reaches S3 one way: one client factory, one retry policy, one reading of S3's errors."""

from __future__ import annotations

import ast
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from handlers.worker._s3 import DEFAULT_S3_ATTEMPTS, new_s3_client, s3_config, s3_error_retryable

WORKER = Path(__file__).resolve().parents[2] / "handlers" / "worker"


def _error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "op")


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("SlowDown", 503, True),
        ("InternalError", 500, True),
        ("", 429, True),
        ("RequestTimeout", 400, True),
        ("NoSuchKey", 404, False),
        ("AccessDenied", 403, False),
        ("InvalidArgument", 400, False),
    ],
)
def test_s3_errors_are_read_one_way(code: str, status: int, retryable: bool) -> None:
    assert s3_error_retryable(_error(code, status)) is retryable


def test_clients_never_use_boto3s_default_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = new_s3_client()
    assert boto3.DEFAULT_SESSION is None
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": DEFAULT_S3_ATTEMPTS}


def test_one_retry_policy_whatever_the_timeouts() -> None:
    fast = s3_config(connect_timeout_s=2, read_timeout_s=5)
    assert fast.retries == s3_config().retries
    assert (fast.connect_timeout, fast.read_timeout) == (2, 5)


def test_only_the_factory_module_imports_boto3() -> None:
    importers = []
    for path in WORKER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module == "boto3":
                names = ["boto3"]
            if "boto3" in names:
                importers.append(path.name)
    assert importers == ["_s3.py"]
