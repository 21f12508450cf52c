"""The Lambda entry points as AWS calls them: configured from the environment, clients built on the first call,
real moto and emulator behind them. Also: the import stays light, configuration errors are listed at once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import handlers.dispatch
from handlers.common import ConfigError
from handlers.contract import JobState
from handlers.dispatch import on_queue, on_webhook, reconcile
from handlers.dispatch._config import load_settings
from handlers.dispatch._runtime import reset_runtime, runtime
from handlers.dispatch._secrets import resolve_references
from tests.conftest import REPO
from tests.dispatch.conftest import (
    API_TOKEN,
    FAST_CONFIG,
    PROGRESS_SECRET,
    WEBHOOK_TOKEN,
    AwsStack,
    Emulator,
    InTestWorker,
    WebhookFront,
    http_event,
    job_message,
    sqs_event,
    wait_for,
)


def test_public_surface() -> None:
    expected = ["DispatchError", "ResourceNames", "aws_errors", "on_queue", "on_webhook", "provision", "reconcile"]
    assert handlers.dispatch.__all__ == expected
    for name in expected:
        assert getattr(handlers.dispatch, name).__module__.startswith("handlers.dispatch")


def test_import_pulls_in_neither_runpod_nor_pillow() -> None:
    code = (
        "import sys, json; import handlers.dispatch; import handlers.dispatch._runtime, handlers.dispatch._jobs, "
        "handlers.dispatch._dynamo_store, handlers.dispatch._runpod, handlers.dispatch._validation, "
        "handlers.dispatch._notify; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('runpod', 'PIL', 'boto3', 'httpx') "
        "or m.startswith('handlers.worker'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout)
    # The shared SSRF guard (handlers.outbound) must not drag the worker (websockets, pillow) into a Lambda.
    assert not [m for m in loaded if m.split(".")[0] in ("runpod", "PIL") or m.startswith("handlers.worker")]
    assert "httpx" in loaded  # the check can see third-party modules


def test_entry_module_import_is_lazy() -> None:
    code = "import sys, handlers.dispatch; print(sorted(m for m in ('boto3', 'httpx', 'pydantic') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_configuration_errors_are_all_listed_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"RELAY_WEBHOOK_TOKEN": "short", "RELAY_MAX_ATTEMPTS": "0", "RELAY_RECONCILE_STALE_S": "3600"})
    text = str(caught.value)
    for name in (
        "RELAY_JOBS_TABLE",
        "RELAY_S3_BUCKET",
        "RUNPOD_ENDPOINT_ID",
        "RELAY_WEBHOOK_URL",
        "RELAY_WEBHOOK_TOKEN",
        "RELAY_PROGRESS_SECRET",
        "RELAY_API_TOKEN",
        "RELAY_MAX_ATTEMPTS",
        "RELAY_RECONCILE_STALE_S",
    ):
        assert name in text, name
    assert "short" not in text  # a bad secret's value is never echoed


class _SecretsManager:
    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        assert SecretId == "relay/runpod"
        return {"SecretString": " rp-key-from-secrets-manager\n"}


class _Session:
    def client(self, name: str) -> _SecretsManager:
        assert name == "secretsmanager"
        return _SecretsManager()


def test_the_api_key_is_required_and_may_come_by_reference() -> None:
    base = {
        "RELAY_JOBS_TABLE": "jobs",
        "RELAY_S3_BUCKET": "bucket",
        "RUNPOD_ENDPOINT_ID": "ep",
        "RELAY_WEBHOOK_URL": "https://relay.example",
        "RELAY_WEBHOOK_TOKEN": "t" * 20,
        "RELAY_PROGRESS_SECRET": "p" * 20 + ", " + "q" * 20,
        "RELAY_API_TOKEN": "a" * 20,
    }
    with pytest.raises(ConfigError, match="RUNPOD_API_KEY: is required \\(or give RUNPOD_API_KEY_SECRET or"):
        load_settings(base)
    # The reference is resolved before validation (one resolver for every secret), so settings hold the value.
    settings = load_settings(resolve_references({**base, "RUNPOD_API_KEY_SECRET": "relay/runpod"}, _Session()))
    assert settings.api_key.get_secret_value() == "rp-key-from-secrets-manager"
    assert len(settings.progress_secrets) == 2
    assert settings.runpod_webhook == f"https://relay.example/webhooks/runpod?token={'t' * 20}"
    assert "t" * 20 not in repr(settings)


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, aws: AwsStack, emulator: Emulator, webhook_front: WebhookFront
) -> Iterator[None]:
    env = {
        **aws.env(),
        "RUNPOD_ENDPOINT_ID": FAST_CONFIG.endpoint_id,
        "RUNPOD_API_KEY": FAST_CONFIG.api_key,
        "RUNPOD_API_BASE": emulator.api_base,
        "RELAY_WEBHOOK_URL": webhook_front.url,
        "RELAY_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RELAY_PROGRESS_SECRET": PROGRESS_SECRET,
        "RELAY_API_TOKEN": API_TOKEN,
        "RELAY_RECONCILE_STALE_S": "0",
        "RELAY_RECONCILE_SUBMIT_AFTER_S": "0",
        "RELAY_RESUBMIT_BASE_S": "0",
        "RELAY_RESUBMIT_CAP_S": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    webhook_front.handler = lambda event: on_webhook(event, None)
    try:
        yield
    finally:
        runtime().service.runpod.close()  # type: ignore[attr-defined]
        reset_runtime()


def _get_job(job_id: str) -> dict[str, Any]:
    answer = on_webhook(http_event("GET", f"/jobs/{job_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}), None)
    assert answer["statusCode"] == 200, answer
    body: dict[str, Any] = json.loads(answer["body"])
    return body


@pytest.mark.usefixtures("lambda_env")
def test_entry_points_run_a_job_from_queue_to_result(emulator: Emulator) -> None:
    answer = on_queue(sqs_event(("msg-entry", job_message("job-entry"), 1), ("msg-bad", "[]", 1)), None)
    assert answer == {"batchItemFailures": []}
    assert _get_job("job-entry")["state"] == "SUBMITTED"
    assert _get_job("msg-bad")["state"] == "REJECTED"
    with InTestWorker(emulator) as worker:
        wait_for(lambda: _get_job("job-entry")["state"] == "SUCCEEDED", 20, "the job to succeed")
    # Dispatch gave the worker its own progress webhook (the caller set none), and the signed event was recorded.
    assert worker.progress_answers == [200]
    assert _get_job("job-entry")["progress"]["node_title"] == "KSampler"
    summary = reconcile({}, None)
    assert summary["examined"] == 0
    assert runtime().service.store.get("job-entry").state is JobState.SUCCEEDED  # type: ignore[union-attr]
