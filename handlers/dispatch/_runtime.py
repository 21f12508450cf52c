"""What a Lambda process builds once, on its first invocation (never at import): settings, AWS clients, the RunPod
client, the job service and the HTTP handler. ``runtime()`` caches it per process; ``reset_runtime()`` is for tests
that change the environment."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from handlers.common import Backoff, ConfigError, register_secret
from handlers.contract import ProgressWebhook
from handlers.dispatch._config import Settings, load_settings
from handlers.dispatch._jobs import JobService, Limits
from handlers.dispatch._retry import RetryPolicy
from handlers.dispatch._webhook_handler import WebhookHandler

__all__ = ["Runtime", "build_runtime", "limits_from", "reset_runtime", "runtime"]


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    service: JobService
    webhook: WebhookHandler


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_attempts=settings.max_attempts,
        max_receives=settings.max_receives,
        stale_after_ms=int(settings.stale_after_s * 1000),
        submit_after_ms=int(settings.submit_after_s * 1000),
        resubmit_backoff=Backoff(base_s=settings.resubmit_base_s, cap_s=settings.resubmit_cap_s, min_s=0.0),
        record_ttl_s=settings.record_ttl_days * 24 * 3600,
        progress_min_interval_ms=settings.progress_min_interval_ms,
        reconcile_limit=settings.reconcile_limit,
        reconcile_concurrency=settings.reconcile_concurrency,
    )


def build_runtime(environ: Mapping[str, str] | None = None) -> Runtime:
    """Validate the environment and build every client. ``AWS_ENDPOINT_URL`` (moto locally) and the other standard
    AWS variables are read by boto3 itself; ``<NAME>_SECRET`` / ``<NAME>_PARAMETER`` references are resolved first
    (``_secrets``)."""
    import boto3  # noqa: PLC0415  (the import is the cold start's largest cost; keep it off module import)
    from botocore.config import Config  # noqa: PLC0415

    from handlers.dispatch._dynamo_store import DynamoJobStore  # noqa: PLC0415
    from handlers.dispatch._logging import configure_logging  # noqa: PLC0415
    from handlers.dispatch._notify import HttpNotifier, NotifyPolicy  # noqa: PLC0415
    from handlers.dispatch._runpod import RunPodClient  # noqa: PLC0415
    from handlers.dispatch._secrets import resolve_references  # noqa: PLC0415
    from handlers.dispatch._validation import DEFAULT_CATALOGUE, InputValidator  # noqa: PLC0415
    from handlers.outbound import OutboundGuard  # noqa: PLC0415
    from handlers.workflow import LibraryMissingError, require_library  # noqa: PLC0415

    session = boto3.session.Session()
    # Secrets (and the stack's webhook URL) given as Secrets Manager / SSM references are fetched here, once.
    settings = load_settings(resolve_references(os.environ if environ is None else environ, session))
    configure_logging()
    for secret in (settings.api_key, settings.webhook_token, settings.api_token, *settings.progress_secrets):
        register_secret(secret.get_secret_value())  # logged by no one; redacted should anyone
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=10,
        max_pool_connections=max(10, 2 * max(settings.batch_concurrency, settings.reconcile_concurrency)),
    )
    dynamodb = session.client("dynamodb", config=config)
    s3 = session.client("s3", config=config)
    sqs = session.client("sqs", config=config)
    catalogue = settings.object_info or DEFAULT_CATALOGUE
    if not catalogue.is_file():
        raise ConfigError([f"RELAY_OBJECT_INFO: {catalogue} is not a file"], component="dispatch")
    try:
        workflows = require_library(root=settings.workflows)
    except LibraryMissingError as exc:
        raise ConfigError([str(exc)], component="dispatch") from None
    clock_ms = _clock_ms
    store = DynamoJobStore(
        settings.jobs_table,
        dynamodb=dynamodb,
        s3=s3,
        bucket=settings.s3_bucket,
        clock_ms=clock_ms,
        inline_message_bytes=settings.inline_input_bytes,
    )
    runpod = RunPodClient(
        settings.api_base,
        settings.api_key.get_secret_value(),
        timeout_s=settings.runpod_timeout_s,
        retry=RetryPolicy(attempts=settings.runpod_attempts, max_retry_after_s=5.0),
    )
    notify_policy = NotifyPolicy(
        guard=OutboundGuard(allow_private=settings.allow_private_urls), queues=frozenset(settings.notify_queues)
    )
    service = JobService(
        store,
        runpod,
        endpoint_id=settings.endpoint_id,
        webhook_url=settings.runpod_webhook,
        progress_webhook=ProgressWebhook(
            url=f"{settings.webhook_url.rstrip('/')}/webhooks/progress",
            secret=settings.progress_secrets[0].get_secret_value(),
            min_interval_ms=min(60_000, max(100, settings.progress_min_interval_ms)),
        ),
        notifier=HttpNotifier(sqs=sqs, retry=RetryPolicy(attempts=settings.notify_attempts), policy=notify_policy),
        notify_policy=notify_policy,
        validator=InputValidator(catalogue_path=catalogue, workflows=workflows),
        limits=limits_from(settings),
    )
    webhook = WebhookHandler(
        service,
        webhook_token=settings.webhook_token.get_secret_value(),
        progress_secrets=[s.get_secret_value() for s in settings.progress_secrets],
        api_token=settings.api_token.get_secret_value(),
        tolerance_s=settings.progress_tolerance_s,
    )
    return Runtime(settings=settings, service=service, webhook=webhook)


def _clock_ms() -> int:
    import time  # noqa: PLC0415

    return int(time.time() * 1000)


_lock = threading.Lock()
_current: Runtime | None = None


def runtime() -> Runtime:
    global _current  # noqa: PLW0603  (one runtime per Lambda process, by design)
    with _lock:
        if _current is None:
            _current = build_runtime()
        return _current


def reset_runtime() -> None:
    global _current  # noqa: PLW0603
    with _lock:
        _current = None
