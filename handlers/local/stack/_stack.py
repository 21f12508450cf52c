"""The local stack as one object: start every part in order, check each is healthy, describe it, stop it all.

Order: ports checked first (one clear message per taken port), then the services (moto, ComfyUI, RunPod) start
together and are waited on together, then AWS resources are created, then the clients of those services (workers
under the runpod SDK loop, the Lambda event-source loop). Stopping goes in reverse.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from handlers.local.stack._config import Component, StackConfig, StackPorts
from handlers.local.stack._events import HEALTH_PATH
from handlers.local.stack._health import StackError, check_port_free, wait_healthy
from handlers.local.stack._models import place_model_files
from handlers.local.stack._pack_assets import ASSET_PREFIX, upload_pack_assets
from handlers.local.stack._samples import place_sample_inputs
from handlers.local.stack._state import StackInfo, remove_state, write_state
from handlers.local.stack._supervisor import Child, Supervisor

__all__ = ["AWS_TEST_CREDENTIALS", "LocalStack", "dispatch_available", "worker_available"]

#: moto accepts any credentials; fixed ones keep a developer's real keys out of every request.
AWS_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_BUCKET = "comfy-relay"


def worker_available() -> bool:
    """The worker entry point (``python -m handlers.worker``) exists in this tree."""
    return importlib.util.find_spec("handlers.worker.__main__") is not None


def dispatch_available() -> bool:
    """The dispatch Lambdas and their resource definitions exist in this tree."""
    return all(
        importlib.util.find_spec(name) is not None for name in ("handlers.dispatch", "handlers.local.stack.__main__")
    )


def _lambda_secrets() -> dict[str, str]:
    """Fresh per stack: the webhook token RunPod sends back, the progress HMAC secret, the bearer for GET /jobs."""
    return {
        "RELAY_WEBHOOK_TOKEN": secrets.token_urlsafe(24),
        "RELAY_PROGRESS_SECRET": secrets.token_urlsafe(24),
        "RELAY_API_TOKEN": secrets.token_urlsafe(24),
    }


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


#: Settings of the real services: a child inherits none of them from the developer's shell, so a stray
#: ``AWS_ENDPOINT_URL_SQS``, ``AWS_PROFILE`` or ``COMFYUI_COMMAND`` cannot point a part of the stack elsewhere.
_FOREIGN_PREFIXES = ("AWS_", "RUNPOD_", "RELAY_", "COMFYUI_")


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
    # Loopback traffic must never go through a proxy from the developer's environment.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class LocalStack:
    """``with LocalStack(config) as stack: info = stack.start()``; leaving the block stops every process."""

    config: StackConfig
    supervisor: Supervisor = field(init=False)
    info: StackInfo | None = field(default=None, init=False)
    _children: dict[str, Child] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.config.log_dir)

    def _prepare_logs(self) -> None:
        """This run's log folder, ``logs/latest`` pointing at it, and only the last ``keep_runs`` runs kept."""
        cfg = self.config
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        latest = cfg.logs_root / "latest"
        with contextlib.suppress(OSError):
            partial = cfg.logs_root / f".latest-{os.getpid()}"
            partial.unlink(missing_ok=True)
            partial.symlink_to(cfg.run_name)
            partial.replace(latest)
        runs = sorted(
            (p for p in cfg.logs_root.iterdir() if p.is_dir() and not p.is_symlink()),
            key=lambda p: p.stat().st_mtime,
        )
        for old in runs[: max(0, len(runs) - cfg.keep_runs)]:
            if old != cfg.log_dir:
                shutil.rmtree(old, ignore_errors=True)

    # --------------------------------------------------------------------------------------------------- start

    def start(self) -> StackInfo:
        cfg = self.config
        ports = StackPorts.from_base(cfg.port_base, cfg.host)
        use_comfyui_emulator = cfg.comfyui_url is None
        with_dispatch = dispatch_available()
        wanted = [Component.MOTO, Component.RUNPOD]
        if use_comfyui_emulator:
            wanted.append(Component.COMFYUI)
        if with_dispatch:
            wanted.append(Component.LAMBDA_URL)
        for component in sorted(wanted, key=lambda c: c.offset):
            check_port_free(cfg.host, ports.of(component), component.label)

        urls = {c.key: f"http://{cfg.host}:{ports.of(c)}" for c in wanted}
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_logs()
        deadline = time.monotonic() + cfg.ready_timeout_s
        env = _base_env()
        # Everything that can start at once does: the services, then the workers (whose SDK import is the
        # slowest step) while moto is provisioned and the event sources come up.
        self._start_moto(ports.moto, env)
        self._start_runpod(ports.runpod, env)
        if use_comfyui_emulator:
            self._start_comfyui(ports.comfyui, env)
            comfyui_url = urls["comfyui"]
        else:
            assert cfg.comfyui_url is not None
            comfyui_url = urls["comfyui"] = cfg.comfyui_url.rstrip("/")
        runpod_health = f"{urls['runpod']}/v2/{cfg.endpoint_id}/health"
        runpod_headers = {"Authorization": f"Bearer {cfg.api_key}"}
        # ComfyUI first: a given COMFYUI_URL that does not answer is the likeliest mistake, reported soonest.
        wait_healthy(
            Component.COMFYUI.label if use_comfyui_emulator else f"ComfyUI at {comfyui_url}",
            comfyui_url + "/system_stats",
            deadline,
            child=self._children.get("comfyui"),
        )
        wait_healthy(
            Component.RUNPOD.label, runpod_health, deadline, child=self._children["runpod"], headers=runpod_headers
        )
        client_env = {
            "COMFYUI_URL": comfyui_url,
            "RUNPOD_API_BASE": f"{urls['runpod']}/v2",
            "RUNPOD_API_KEY": cfg.api_key,
            "RUNPOD_ENDPOINT_ID": cfg.endpoint_id,
            "AWS_ENDPOINT_URL": urls["moto"],
            **AWS_TEST_CREDENTIALS,
            "RELAY_S3_BUCKET": _BUCKET,
        }
        notes: list[str] = []
        if cfg.stream:
            notes.append("workers run in streaming mode (RELAY_STREAM=1): /status of a finished job is the chunk list")
        worker_env = self._worker_env(urls, comfyui_url, client_env)
        workers = cfg.workers if worker_available() else 0
        if not worker_available():
            notes.append("worker (python -m handlers.worker) not available: RunPod jobs will wait in the queue")
        for number in range(1, workers + 1):
            self._start_worker(number, worker_env, env)

        wait_healthy(Component.MOTO.label, urls["moto"] + "/moto-api/", deadline, child=self._children["moto"])
        if with_dispatch:
            client_env.update(self._provision(urls["moto"]))
            client_env["RELAY_WEBHOOK_URL"] = urls["lambda-url"]
            secrets_env = _lambda_secrets()
            client_env["RELAY_API_TOKEN"] = secrets_env["RELAY_API_TOKEN"]
            self._start_events(ports.lambda_url, {**client_env, **secrets_env}, env)
            wait_healthy(
                Component.LAMBDA_URL.label,
                urls["lambda-url"] + HEALTH_PATH,
                deadline,
                child=self._children["events"],
            )
        else:
            notes.append("dispatch (handlers.dispatch) not available: no SQS event loop, queue or jobs table")
            self._create_bucket(urls["moto"])
        # The characters' assets, where RELAY_ASSET_BASE_URL points: a worker fetches them on first use.
        upload_pack_assets(self._aws_clients(urls["moto"])[2], _BUCKET)
        if workers:
            self._wait_workers(workers, runpod_health, runpod_headers, deadline)
        self._check_still_running()

        self.info = StackInfo(
            supervisor_pid=os.getpid(),
            state_dir=str(cfg.state_dir),
            urls=urls,
            client_env=client_env,
            worker_env=worker_env,
            pids={name: child.pid for name, child in self._children.items()},
            parts=list(self._children),
            notes=notes,
        )
        write_state(self.info)
        return self.info

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = self.supervisor.start(name, argv, env=env)
        self._children[name] = child
        return child

    def _start_moto(self, port: int, env: dict[str, str]) -> None:
        argv = _python("-m", "handlers.local.stack", "moto", "--host", self.config.host, "--port", str(port))
        self._spawn("moto", argv, env)

    def _start_runpod(self, port: int, env: dict[str, str]) -> None:
        cfg = self.config
        argv = _python("-m", "handlers.local.stack", "runpod", "--host", cfg.host, "--port", str(port))
        argv += ["--endpoint-id", cfg.endpoint_id, "--api-key", cfg.api_key, "--worker-key", cfg.worker_key]
        self._spawn("runpod", argv, env)

    def _start_comfyui(self, port: int, env: dict[str, str]) -> None:
        cfg = self.config
        comfy_dir = cfg.data_dir / "comfyui"
        models = cfg.data_dir / "models"
        comfy_dir.mkdir(parents=True, exist_ok=True)
        place_model_files(models)
        place_sample_inputs(comfy_dir / "input")
        argv = _python(
            "-m",
            "handlers.cli",
            "emulate",
            "comfyui",
            "--host",
            cfg.host,
            "--port",
            str(port),
            "--data-dir",
            str(comfy_dir),
            "--models",
            str(models),
            "--step-delay",
            str(cfg.step_delay_s),
        )
        self._spawn("comfyui", argv, env)

    def _comfyui_dirs(self) -> tuple[Path | None, Path | None]:
        cfg = self.config
        if cfg.comfyui_url is None:
            return cfg.data_dir / "comfyui" / "input", cfg.data_dir / "comfyui" / "output"
        return cfg.comfyui_input_dir, cfg.comfyui_output_dir

    def _worker_env(self, urls: dict[str, str], comfyui_url: str, client_env: dict[str, str]) -> dict[str, str]:
        from handlers.local.runpod import EmulatorConfig, worker_environment  # noqa: PLC0415 - aiohttp is heavy

        cfg = self.config
        emulator = EmulatorConfig(endpoint_id=cfg.endpoint_id, api_key=cfg.api_key, worker_key=cfg.worker_key)
        env = worker_environment(urls["runpod"], emulator, ping_interval_ms=2000)
        input_dir, output_dir = self._comfyui_dirs()
        env.update(
            {
                "COMFYUI_URL": comfyui_url,
                "RELAY_S3_BUCKET": client_env["RELAY_S3_BUCKET"],
                "RELAY_S3_PREFIX": "outputs/",
                # Everything in a local stack is on loopback: progress webhooks and media URLs included.
                "RELAY_ALLOW_PRIVATE_URLS": "1",
                # The SDK's DEBUG lines (a job-take poll every second) would be most of the worker's log; and its
                # start-up checks would reach for 8.8.8.8, which a local stack never does.
                "RUNPOD_LOG_LEVEL": "INFO",
                "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
                "AWS_ENDPOINT_URL_S3": urls["moto"],
                **AWS_TEST_CREDENTIALS,
                # Character packs: assets from the stack's bucket, cached under the data folder.
                "RELAY_ASSET_BASE_URL": f"s3://{_BUCKET}/{ASSET_PREFIX}",
                "RELAY_ASSET_CACHE_DIR": str(cfg.data_dir / "asset-cache"),
            }
        )
        if cfg.comfyui_url is None:
            env["COMFYUI_MODELS_DIR"] = str(cfg.data_dir / "models")
        if cfg.stream:
            env["RELAY_STREAM"] = "1"
        if input_dir is not None:
            env["COMFYUI_INPUT_DIR"] = str(input_dir)
        if output_dir is not None:
            env["COMFYUI_OUTPUT_DIR"] = str(output_dir)
        env.update(cfg.extra_env)
        return env

    def _wait_workers(self, count: int, health_url: str, headers: dict[str, str], deadline: float) -> None:
        """Until the RunPod emulator has heard from ``count`` workers (a worker that exits is reported with its log)."""
        children = [c for name, c in self._children.items() if name.startswith("worker-")]

        def enough(response: httpx.Response) -> bool:
            if response.status_code != 200:
                return False
            workers = response.json().get("workers", {})
            return int(workers.get("idle", 0)) + int(workers.get("running", 0)) >= count

        for child in children:
            # Each child is checked for an early exit; the count is the same condition for all of them.
            wait_healthy(f"worker {child.name}", health_url, deadline, child=child, headers=headers, accept=enough)

    def _start_worker(self, number: int, worker_env: dict[str, str], env: dict[str, str]) -> None:
        child_env = {**env, **worker_env, "RUNPOD_POD_ID": f"local-worker-{number}"}
        self._spawn(f"worker-{number}", _python("-m", "handlers.worker"), child_env)

    def _start_events(self, port: int, client_env: dict[str, str], env: dict[str, str]) -> None:
        cfg = self.config
        argv = _python(
            "-m",
            "handlers.local.stack",
            "events",
            "--host",
            cfg.host,
            "--port",
            str(port),
            "--reconcile-interval",
            str(cfg.reconcile_interval_s),
        )
        self._spawn("events", argv, {**env, **client_env, **cfg.extra_env})

    def _aws_clients(self, endpoint: str) -> tuple[object, object, object]:
        import boto3  # noqa: PLC0415

        session = boto3.session.Session(
            aws_access_key_id=AWS_TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        return (
            session.client("dynamodb", endpoint_url=endpoint),
            session.client("sqs", endpoint_url=endpoint),
            session.client("s3", endpoint_url=endpoint),
        )

    def _create_bucket(self, endpoint: str) -> None:
        _, _, s3 = self._aws_clients(endpoint)
        s3.create_bucket(Bucket=_BUCKET)  # type: ignore[attr-defined]

    def _provision(self, endpoint: str) -> dict[str, str]:
        from handlers.dispatch import ResourceNames, provision  # noqa: PLC0415

        dynamodb, sqs, s3 = self._aws_clients(endpoint)
        names = ResourceNames(bucket=_BUCKET)
        try:
            done = provision(dynamodb=dynamodb, sqs=sqs, s3=s3, names=names)  # type: ignore[arg-type]
        except Exception as exc:  # dispatch's errors and botocore's alike: the stack cannot work without them
            log = self._children["moto"].log_tail()
            raise StackError(f"creating the queue, table and bucket on moto failed: {exc}\nmoto's log:\n{log}") from exc
        return {
            "RELAY_JOBS_TABLE": done.table,
            "RELAY_S3_BUCKET": done.bucket,
            "RELAY_QUEUE_URL": done.queue_url,
            "RELAY_DLQ_URL": done.dead_letter_queue_url,
        }

    # ---------------------------------------------------------------------------------------------- supervision

    def _check_still_running(self) -> None:
        for child in self.supervisor.exited():
            raise StackError(
                f"{child.name} exited with status {child.process.returncode}; "
                f"its log ({child.log_path}) ends with:\n{child.log_tail()}"
            )

    def failed(self) -> list[Child]:
        """Children that exited on their own (the stack is broken if this is not empty)."""
        return self.supervisor.exited()

    def stop(self) -> None:
        # Clients first, while the services they talk to still answer: they then exit at once and log no errors.
        clients = [c for name, c in self._children.items() if name.startswith("worker-") or name == "events"]
        self.supervisor.stop_some(clients)
        self.supervisor.stop_all()
        if self.info is not None:
            remove_state(self.config.state_dir, self.info.supervisor_pid)

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
