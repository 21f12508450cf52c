"""The worker's configuration: environment variables read and validated once, at start-up, into typed settings.

Every problem is reported at once (``ConfigError.problems``), so a misconfigured image fails its first boot with a
complete list instead of one variable at a time. The only I/O: checking that a named warmup file exists.
"""

from __future__ import annotations

import os
import shlex
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from handlers.common import ConfigError
from handlers.worker._pipeline import DEFAULT_MAX_CONCURRENT_JOBS
from handlers.worker._vram import FreePolicy
from handlers.workflow import LibraryMissingError, default_workflows_dir, require_library

__all__ = [
    "DEFAULT_COMFYUI_URL",
    "WorkerConfig",
]

T = TypeVar("T")

DEFAULT_COMFYUI_URL: Final = "http://127.0.0.1:8188"
_TRUTHY: Final = frozenset({"1", "true", "yes", "on"})
_FALSY: Final = frozenset({"", "0", "false", "no", "off"})
#: The installed template library (the wheel carries workflows/), used when RELAY_WORKFLOWS_DIR is not set.
_BUNDLED_WORKFLOWS: Final = default_workflows_dir({})


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything the worker needs to know about its surroundings. All limits are finite."""

    comfyui_url: str = DEFAULT_COMFYUI_URL
    #: argv that starts ComfyUI; ``None`` means ComfyUI is run by someone else.
    comfyui_command: tuple[str, ...] | None = None
    #: ComfyUI's folders when it shares this machine's disk; ``None`` means go through its HTTP API.
    comfyui_output_dir: Path | None = None
    comfyui_input_dir: Path | None = None
    comfyui_temp_dir: Path | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    #: Buckets besides ``s3_bucket`` that a job may name (``output.bucket``, ``s3://`` media): none by default, since
    #: the worker's role may reach buckets no caller should read or write through it.
    extra_buckets: frozenset[str] = frozenset()
    stream: bool = False
    progress_interval_ms: int = 500
    upload_concurrency: int = 4
    allow_private_urls: bool = False
    media_max_bytes: int = 512 * 1024 * 1024
    warmup_workflow: Path | None = None
    workflows_dir: Path = _BUNDLED_WORKFLOWS
    #: How long ComfyUI may take to answer /system_stats after (re)starting.
    startup_timeout_s: float = 300.0
    #: Grace after asking a supervised ComfyUI to stop before it is killed.
    stop_timeout_s: float = 10.0
    webhook_timeout_s: float = 5.0
    webhook_queue_size: int = 16
    #: Where per-job scratch files go (downloads from /view, staged media when ComfyUI is remote).
    scratch_dir: Path | None = None
    #: How long a job's cleanup of an abandoned prompt and its files may take.
    cleanup_timeout_s: float = 10.0
    #: Jobs held at once (the SDK's concurrency): one running in ComfyUI, the next queued behind it.
    max_concurrent_jobs: int = DEFAULT_MAX_CONCURRENT_JOBS
    #: When to ask ComfyUI to unload models before a prompt (besides templates that ask, and exclusive jobs).
    free_vram: FreePolicy = FreePolicy.NEVER
    #: ComfyUI's models folder on this machine: where character pack models (LoRAs) are placed.
    comfyui_models_dir: Path | None = None
    #: Character pack assets, cached by sha256 (``None``: ``<scratch or temp>/comfy-relay-assets``).
    asset_cache_dir: Path | None = None
    asset_cache_bytes: int = 20 * 1024**3
    #: What ``${RELAY_ASSET_BASE_URL}`` in a character.json stands for (an http(s):// or s3:// base).
    asset_base_url: str | None = None
    #: The image's lock (RELAY_LOCK_FILE, set by the image): model sha256s and node commits for results.
    lock_file: Path | None = None

    def bucket_allowed(self, bucket: str) -> bool:
        return bucket == self.s3_bucket or bucket in self.extra_buckets

    @property
    def supervised(self) -> bool:
        return self.comfyui_command is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerConfig:
        """Read and check every variable; raise :class:`ConfigError` listing all problems found."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def get(name: str, parse: Callable[[str], T], default: T) -> T:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                return parse(raw.strip())
            except ValueError as exc:
                problems.append(f"{name}={raw!r}: {exc}")
                return default

        url = get("COMFYUI_URL", _http_url, DEFAULT_COMFYUI_URL)
        command = get("COMFYUI_COMMAND", _command, None)
        output_dir = get("COMFYUI_OUTPUT_DIR", _directory, None)
        input_dir = get("COMFYUI_INPUT_DIR", _directory, None)
        temp_dir = get("COMFYUI_TEMP_DIR", _directory, None)
        if temp_dir is None and output_dir is not None:
            temp_dir = output_dir.parent / "temp"  # ComfyUI's layout: output/, temp/ and input/ side by side
        bucket = get("RELAY_S3_BUCKET", _bucket, None)
        prefix = get("RELAY_S3_PREFIX", _prefix, "")
        config = cls(
            comfyui_url=url,
            comfyui_command=command,
            comfyui_output_dir=output_dir,
            comfyui_input_dir=input_dir,
            comfyui_temp_dir=temp_dir,
            s3_bucket=bucket,
            s3_prefix=prefix,
            extra_buckets=get("RELAY_ALLOWED_BUCKETS", _buckets, frozenset()),
            stream=get("RELAY_STREAM", _flag, False),
            progress_interval_ms=get("RELAY_PROGRESS_INTERVAL_MS", _bounded_int(0, 60_000), 500),
            upload_concurrency=get("RELAY_UPLOAD_CONCURRENCY", _bounded_int(1, 64), 4),
            allow_private_urls=get("RELAY_ALLOW_PRIVATE_URLS", _flag, False),
            media_max_bytes=get("RELAY_MEDIA_MAX_BYTES", _bounded_int(1, 64 * 1024**3), 512 * 1024 * 1024),
            warmup_workflow=get("RELAY_WARMUP_WORKFLOW", _file, None),
            workflows_dir=get("RELAY_WORKFLOWS_DIR", _directory, _BUNDLED_WORKFLOWS),
            startup_timeout_s=get("RELAY_COMFYUI_STARTUP_TIMEOUT_S", _seconds, 300.0),
            webhook_timeout_s=get("RELAY_WEBHOOK_TIMEOUT_S", _seconds, 5.0),
            scratch_dir=get("RELAY_SCRATCH_DIR", _directory, None),
            max_concurrent_jobs=get("RELAY_MAX_CONCURRENT_JOBS", _bounded_int(1, 16), DEFAULT_MAX_CONCURRENT_JOBS),
            free_vram=get("RELAY_FREE_VRAM", _free_policy, FreePolicy.NEVER),
            comfyui_models_dir=get("COMFYUI_MODELS_DIR", _directory, None),
            asset_cache_dir=get("RELAY_ASSET_CACHE_DIR", _directory, None),
            asset_cache_bytes=get("RELAY_ASSET_CACHE_BYTES", _bounded_int(1024**2, 16 * 1024**4), 20 * 1024**3),
            asset_base_url=get("RELAY_ASSET_BASE_URL", _asset_base, None),
            lock_file=get("RELAY_LOCK_FILE", _file, None),
        )
        if not any(p.startswith("RELAY_WORKFLOWS_DIR=") for p in problems):
            try:
                require_library(env)
            except LibraryMissingError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError(problems, component="worker")
        return config


def _http_url(raw: str) -> str:
    parsed = urllib.parse.urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL")
    return raw.rstrip("/")


def _asset_base(raw: str) -> str:
    parsed = urllib.parse.urlsplit(raw)
    if parsed.scheme not in ("http", "https", "s3") or not parsed.netloc or parsed.query or parsed.fragment:
        raise ValueError("must be an http(s):// URL or an s3://bucket[/prefix] URI, without query or fragment")
    return raw.rstrip("/")


def _command(raw: str) -> tuple[str, ...]:
    argv = tuple(shlex.split(raw))
    if not argv:
        raise ValueError("is empty")
    return argv


def _directory(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ValueError("must be an absolute path")
    return path


def _file(raw: str) -> Path:
    path = _directory(raw)
    if not path.is_file():
        raise ValueError("is not a readable file")
    return path


def _bucket(raw: str) -> str:
    if not (3 <= len(raw) <= 63) or not all(c.islower() or c.isdigit() or c in ".-" for c in raw):
        raise ValueError("is not an S3 bucket name")
    return raw


def _buckets(raw: str) -> frozenset[str]:
    return frozenset(_bucket(part.strip()) for part in raw.split(",") if part.strip())


def _prefix(raw: str) -> str:
    parts = [p for p in raw.strip("/").split("/") if p]
    if any(p in {".", ".."} for p in parts):
        raise ValueError("must not contain '.' or '..' segments")
    return "/".join(parts)


def _flag(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUTHY:
        return True
    if lowered in _FALSY:
        return False
    raise ValueError("must be true or false")


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _free_policy(raw: str) -> FreePolicy:
    try:
        return FreePolicy(raw.lower())
    except ValueError:
        raise ValueError(f"must be one of {', '.join(p.value for p in FreePolicy)}") from None


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 7 * 24 * 3600:
        raise ValueError("must be a number of seconds > 0 (at most 7 days)")
    return value
