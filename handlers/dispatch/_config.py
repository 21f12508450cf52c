"""Dispatch settings from environment variables, validated once per cold start with every problem listed at once.

Environment names are the field aliases (:func:`env_names`); nothing reads ``os.environ`` at import. Secrets (the
RunPod API key, webhook and API tokens, the progress HMAC secret) are ``SecretStr`` so they never show in a repr or a
log line. ``RUNPOD_API_KEY`` may be given directly, or as the name of a Secrets Manager secret
(``RUNPOD_API_KEY_SECRET``) or an SSM SecureString parameter (``RUNPOD_API_KEY_PARAMETER``), fetched when the
Lambda's clients are built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from handlers.common import ConfigError
from handlers.dispatch._resources import MAX_RECEIVE_COUNT
from handlers.dispatch._secrets import PARAMETER_SUFFIX, REFERABLE, SECRET_SUFFIX

__all__ = ["DEFAULT_RUNPOD_API_BASE", "Settings", "env_names", "load_settings"]

DEFAULT_RUNPOD_API_BASE: Final = "https://api.runpod.ai/v2"
#: RunPod keeps a /run job's result this long after it ends; the reconciler must look before that.
RUNPOD_RETENTION_S: Final = 30 * 60


class Settings(BaseModel):
    """Everything dispatch is configured with. Limits are finite; times carry their unit in the name."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    jobs_table: str = Field(alias="RELAY_JOBS_TABLE", min_length=3, max_length=255)
    s3_bucket: str = Field(alias="RELAY_S3_BUCKET", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    endpoint_id: str = Field(alias="RUNPOD_ENDPOINT_ID", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: Like the other secrets, given as the value or (resolved before validation, ``_secrets``) by reference.
    api_key: SecretStr = Field(alias="RUNPOD_API_KEY", min_length=1)
    api_base: str = Field(default=DEFAULT_RUNPOD_API_BASE, alias="RUNPOD_API_BASE", pattern=r"^https?://\S+$")
    webhook_url: str = Field(alias="RELAY_WEBHOOK_URL", pattern=r"^https?://\S+$")
    webhook_token: SecretStr = Field(alias="RELAY_WEBHOOK_TOKEN", min_length=16)
    progress_secrets: tuple[SecretStr, ...] = Field(alias="RELAY_PROGRESS_SECRET", min_length=1)
    api_token: SecretStr = Field(alias="RELAY_API_TOKEN", min_length=16)
    object_info: Path | None = Field(default=None, alias="RELAY_OBJECT_INFO")
    #: The template library; ``None``: the one installed with comfy-relay (the same variable as the worker and CLI).
    workflows: Path | None = Field(default=None, alias="RELAY_WORKFLOWS_DIR")
    max_attempts: int = Field(default=3, alias="RELAY_MAX_ATTEMPTS", ge=1, le=20)
    max_receives: int = Field(default=MAX_RECEIVE_COUNT, alias="RELAY_MAX_RECEIVES", ge=1, le=1000)
    stale_after_s: float = Field(default=300.0, alias="RELAY_RECONCILE_STALE_S", ge=0, lt=RUNPOD_RETENTION_S)
    submit_after_s: float = Field(default=300.0, alias="RELAY_RECONCILE_SUBMIT_AFTER_S", ge=0, le=24 * 3600)
    reconcile_limit: int = Field(default=200, alias="RELAY_RECONCILE_LIMIT", ge=1, le=10_000)
    reconcile_concurrency: int = Field(default=8, alias="RELAY_RECONCILE_CONCURRENCY", ge=1, le=64)
    resubmit_base_s: float = Field(default=30.0, alias="RELAY_RESUBMIT_BASE_S", ge=0, le=3600)
    resubmit_cap_s: float = Field(default=600.0, alias="RELAY_RESUBMIT_CAP_S", ge=0, le=24 * 3600)
    batch_concurrency: int = Field(default=10, alias="RELAY_BATCH_CONCURRENCY", ge=1, le=64)
    record_ttl_days: int = Field(default=30, alias="RELAY_RECORD_TTL_DAYS", ge=1, le=3650)
    inline_input_bytes: int = Field(default=300_000, alias="RELAY_INLINE_INPUT_BYTES", ge=1_000, le=350_000)
    progress_min_interval_ms: int = Field(default=2_000, alias="RELAY_PROGRESS_MIN_INTERVAL_MS", ge=0, le=600_000)
    progress_tolerance_s: int = Field(default=300, alias="RELAY_PROGRESS_TOLERANCE_S", ge=1, le=3600)
    # 3 attempts x 8 s + two waits (<= 5 s each) stay well inside the queue Lambda's 60 s timeout.
    runpod_timeout_s: float = Field(default=8.0, alias="RELAY_RUNPOD_TIMEOUT_S", gt=0, le=120)
    runpod_attempts: int = Field(default=3, alias="RELAY_RUNPOD_ATTEMPTS", ge=1, le=10)
    notify_attempts: int = Field(default=3, alias="RELAY_NOTIFY_ATTEMPTS", ge=1, le=10)
    notify_queues: tuple[str, ...] = Field(default=(), alias="RELAY_NOTIFY_QUEUES")
    """Queue URLs a job's ``notify.sqs_queue_url`` may name (comma-separated); none by default."""
    allow_private_urls: bool = Field(default=False, alias="RELAY_ALLOW_PRIVATE_URLS")
    """Let notify webhooks reach private addresses: local stacks and tests only."""

    @field_validator("notify_queues", mode="before")
    @classmethod
    def _split_queues(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("progress_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        # Comma-separated: the old and the new secret are both accepted while a secret rotates.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("progress_secrets")
    @classmethod
    def _long_secrets(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(secret.get_secret_value()) < 16 for secret in value):
            raise ValueError("each secret must be at least 16 characters")
        return value

    @model_validator(mode="before")
    @classmethod
    def _renamed_variables(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "RELAY_WORKFLOWS" in data:
            raise ValueError("RELAY_WORKFLOWS was renamed RELAY_WORKFLOWS_DIR (one name for worker, CLI and dispatch)")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.resubmit_cap_s < self.resubmit_base_s:
            raise ValueError("RELAY_RESUBMIT_CAP_S must not be below RELAY_RESUBMIT_BASE_S")
        return self

    @property
    def runpod_webhook(self) -> str:
        """The URL RunPod POSTs completions to (the token authenticates RunPod's unsigned webhook)."""
        return f"{self.webhook_url.rstrip('/')}/webhooks/runpod?token={self.webhook_token.get_secret_value()}"


def env_names() -> dict[str, str]:
    """Settings field name → environment variable name."""
    return {name: str(field.alias) for name, field in Settings.model_fields.items() if field.alias}


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Validate the environment (empty values count as unset); raise :class:`ConfigError` listing every problem."""
    data: dict[str, Any] = {k: v for k, v in environ.items() if v != ""}
    data.update(overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        names = env_names()
        problems = []
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else ""
            env = names.get(where, where)
            message = "is required" if error["type"] == "missing" else error["msg"]
            if error["type"] == "missing" and env in REFERABLE:
                message += f" (or give {env}{SECRET_SUFFIX} or {env}{PARAMETER_SUFFIX}, a reference)"
            problems.append(f"{env}: {message}" if env else message)
        raise ConfigError(problems, component="dispatch") from None
