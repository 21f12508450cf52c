"""Settings given by reference (``<NAME>_SECRET`` / ``<NAME>_PARAMETER``) are fetched once per cold start from
Secrets Manager / SSM (moto), and never appear in logs or reprs."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from handlers.common import ConfigError
from handlers.dispatch._runtime import build_runtime
from handlers.dispatch._secrets import references, resolve_references
from tests.dispatch.conftest import REGION, AwsStack


def _session(endpoint: str) -> Any:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


def test_one_source_per_setting() -> None:
    with pytest.raises(ConfigError, match="RELAY_API_TOKEN: give only one of RELAY_API_TOKEN, RELAY_API_TOKEN_SECRET"):
        references({"RELAY_API_TOKEN": "x" * 20, "RELAY_API_TOKEN_SECRET": "arn"})
    assert references({"RELAY_API_TOKEN_PARAMETER": "/p"}) == {"RELAY_API_TOKEN": ("parameter", "/p")}
    assert references({"RELAY_API_TOKEN": "x"}) == {}


def test_references_resolve_from_secrets_manager_and_ssm(
    aws: AwsStack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in aws.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    session = _session(aws.endpoint)
    tag = uuid.uuid4().hex[:8]
    secrets = session.client("secretsmanager", endpoint_url=aws.endpoint)
    ssm = session.client("ssm", endpoint_url=aws.endpoint)
    api_key = f"rpa_SECRET_{tag}"
    token = f"webhook-token-{tag}-0123456789"
    arn = secrets.create_secret(Name=f"{tag}/runpod-api-key", SecretString=api_key + "\n")["ARN"]
    secrets.create_secret(Name=f"{tag}/webhook-token", SecretString=token)
    ssm.put_parameter(Name=f"/{tag}/webhook-url", Value="https://hooks.example/", Type="String")
    ssm.put_parameter(Name=f"/{tag}/api-token", Value="api-token-0123456789abcdef", Type="SecureString")
    environ = {
        **aws.env(),
        "RUNPOD_ENDPOINT_ID": "ep",
        "RUNPOD_API_KEY_SECRET": arn,
        "RELAY_WEBHOOK_TOKEN_SECRET": f"{tag}/webhook-token",
        "RELAY_WEBHOOK_URL_PARAMETER": f"/{tag}/webhook-url",
        "RELAY_API_TOKEN_PARAMETER": f"/{tag}/api-token",
        "RELAY_PROGRESS_SECRET": "progress-secret-0123456789",
    }
    resolved = resolve_references(environ, session)
    assert resolved["RUNPOD_API_KEY"] == api_key  # stripped
    assert resolved["RELAY_API_TOKEN"] == "api-token-0123456789abcdef"  # SecureString decrypted
    assert "RUNPOD_API_KEY_SECRET" not in resolved and "RELAY_WEBHOOK_URL_PARAMETER" not in resolved

    runtime = build_runtime(environ)
    try:
        assert runtime.settings.api_key is not None and runtime.settings.api_key.get_secret_value() == api_key
        assert runtime.settings.webhook_url == "https://hooks.example/"
        assert token not in repr(runtime.settings) and api_key not in repr(runtime.settings)
        assert api_key not in caplog.text and token not in caplog.text
    finally:
        runtime.service.runpod.close()  # type: ignore[attr-defined]


def test_a_missing_secret_is_named_without_its_value(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    with pytest.raises(Exception, match=r"RELAY_API_TOKEN_SECRET"):
        resolve_references({"RELAY_API_TOKEN_SECRET": "does-not-exist"}, _session(aws.endpoint))
