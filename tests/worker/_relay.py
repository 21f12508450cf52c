"""Helpers shared by the worker core, handler and SDK tests: graphs the ComfyUI emulator runs, models it needs,
an in-process runtime wired to the emulator and moto, and a webhook receiver."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from handlers.contract import JobResult
from handlers.local._serving import ServerThread
from handlers.local.comfyui import EmulatorConfig, create_app
from handlers.local.stack import placeholder_assets
from handlers.worker import (
    Assets,
    AssetSettings,
    Finished,
    MediaFetcher,
    MediaLimits,
    S3OutputStore,
    WorkerConfig,
    WorkerRuntime,
)
from tests.conftest import REPO
from tests.local.runpod.conftest import Emulator, wait_for
from tests.worker.conftest import make_s3_client

WORKFLOWS = REPO / "workflows"

#: Model files the graphs below (and workflows/ava/image/sdxl-basic) load; empty files satisfy the emulator. Ava's
#: LoRA is not among them: the worker provisions it from her pack (:func:`serve_pack_assets`).
MODELS = (
    "checkpoints/tiny-sd15-random.safetensors",
    "checkpoints/sd_xl_base_1.0.safetensors",
)


def make_models(root: Path) -> Path:
    for name in MODELS:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


@dataclass
class Comfy:
    server: ServerThread
    data_dir: Path
    models_dir: Path | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def output_dir(self) -> Path:
        return self.data_dir / "output"

    @property
    def input_dir(self) -> Path:
        return self.data_dir / "input"


@contextlib.contextmanager
def serve_comfy(data_dir: Path, models: Path, step_delay: float = 0.0) -> Iterator[Comfy]:
    config = EmulatorConfig(data_dir=data_dir, models_dir=models, step_delay=step_delay)
    with ServerThread(lambda: create_app(config)) as server:
        yield Comfy(server, data_dir, models)


@dataclass
class AssetServer:
    """Character pack assets over HTTP on loopback (``RELAY_ASSET_BASE_URL``), counting the requests per path."""

    server: ServerThread
    files: dict[str, bytes]
    requests: collections.Counter[str]

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.contextmanager
def serve_pack_assets(files: dict[str, bytes] | None = None) -> Iterator[AssetServer]:
    """The library's placeholder assets (or ``files``: path -> bytes, mutable while serving)."""
    served = placeholder_assets(WORKFLOWS) if files is None else files
    counts: collections.Counter[str] = collections.Counter()

    async def handle(request: web.Request) -> web.Response:
        path = request.match_info["path"]
        counts[path] += 1
        if path not in served:
            return web.Response(status=404)
        return web.Response(body=served[path], content_type="application/octet-stream")

    def factory() -> web.Application:
        app = web.Application()
        app.router.add_get("/{path:.+}", handle)
        return app

    with ServerThread(factory) as server:
        yield AssetServer(server, served, counts)


def pack_assets_for(comfy: Comfy, base_url: str, cache_dir: Path, budget: int = 1 << 30) -> Assets:
    """An asset cache fetching from ``base_url`` (on loopback: private addresses allowed, for assets only)."""
    settings = AssetSettings(
        cache_dir=cache_dir, budget_bytes=budget, base_url=base_url, models_dir=comfy.models_dir, allow_private=True
    )
    return Assets(settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def mixed_graph(prefix: str = "relay") -> dict[str, Any]:
    """Four outputs of four kinds: a PNG, an animated WEBP, FLAC audio and a text (PreviewAny)."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0xFF0000}},
        "2": {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": f"{prefix}/still"},
            "_meta": {"title": "Still"},
        },
        "3": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 3, "color": 0x00FF00}},
        "4": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["3", 0],
                "filename_prefix": f"{prefix}/anim",
                "fps": 6.0,
                "lossless": True,
                "quality": 80,
                "method": "fastest",
            },
        },
        "5": {"class_type": "EmptyAudio", "inputs": {"duration": 0.25, "sample_rate": 8000, "channels": 1}},
        "6": {"class_type": "SaveAudio", "inputs": {"audio": ["5", 0], "filename_prefix": f"{prefix}/sound"}},
        "7": {"class_type": "PrimitiveString", "inputs": {"value": "hello from the relay"}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}, "_meta": {"title": "Caption"}},
    }


def sampler_graph(*, steps: int = 3, size: int = 64, prefix: str = "relay/sampled", seed: int = 42) -> dict[str, Any]:
    """A checkpoint -> KSampler -> VAEDecode -> SaveImage graph: progress per sampler step. ComfyUI caches nodes
    whose inputs did not change since an earlier prompt: a test that must see the sampler run gives a new seed."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15-random.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
            "_meta": {"title": "Sampler"},
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


def load_image_graph(image: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "relay/inverted"}},
    }


def runtime_for(
    comfy: Comfy,
    moto_endpoint: str,
    bucket: str,
    *,
    local_files: bool = True,
    scratch: Path | None = None,
    assets: Assets | None = None,
    **overrides: Any,
) -> WorkerRuntime:
    settings: dict[str, Any] = {
        "comfyui_url": comfy.url,
        "s3_bucket": bucket,
        "s3_prefix": "jobs",
        "progress_interval_ms": 0,
        "workflows_dir": WORKFLOWS,
        "scratch_dir": scratch,
        "allow_private_urls": False,
    }
    if local_files:
        settings.update(
            comfyui_output_dir=comfy.output_dir,
            comfyui_input_dir=comfy.input_dir,
            comfyui_temp_dir=comfy.data_dir / "temp",
        )
    settings.update(overrides)
    config = WorkerConfig(**settings)
    s3 = make_s3_client(moto_endpoint)
    return WorkerRuntime(
        config,
        store_factory=lambda b, p: S3OutputStore(b, p, client=s3),
        fetcher=MediaFetcher(MediaLimits(max_bytes=config.media_max_bytes), s3_client=s3),
        assets=assets,
        client_id="relay-test",
    )


async def collect(runtime: WorkerRuntime, job: dict[str, Any]) -> tuple[list[Any], Finished]:
    events: list[Any] = []
    async with contextlib.aclosing(runtime.run_job(job)) as stream:
        async for event in stream:
            events.append(event)
    final = events[-1]
    assert isinstance(final, Finished)
    return events[:-1], final


def result_of(final: Finished) -> JobResult:
    assert final.error is None, final.error
    assert final.result is not None
    return final.result


@dataclass
class Receiver:
    """A webhook receiver: records every request (headers and body)."""

    server: ServerThread | None = None
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event | None = None
    status: int = 200

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/hook"

    async def _app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            self.requests.append((dict(request.headers), await request.read()))
            return web.Response(status=self.status)

        app = web.Application()
        app.router.add_post("/hook", hook)
        return app


@contextlib.contextmanager
def serve_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.server = ServerThread(receiver._app)
    with receiver.server:
        yield receiver


# ----------------------------------------------------------------------------------------- SDK worker processes


@dataclass
class RelayWorker:
    """``python -m handlers.worker`` under the real runpod SDK, as a subprocess with its own process group."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def worker_env(
    runpod: Emulator, workdir: Path, comfy_url: str, moto_endpoint: str, bucket: str, **extra: str
) -> dict[str, str]:
    home = workdir / "home"  # keeps a developer's ~/.runpod credentials (which the SDK prefers) out of the test
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **runpod.worker_env(ping_interval_ms=1000),
        "HOME": str(home),
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
        "RUNPOD_SKIP_GPU_CHECK": "true",
        "RUNPOD_LOG_LEVEL": "WARN",
        "PYTHONUNBUFFERED": "1",
        "COMFYUI_URL": comfy_url,
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RELAY_S3_BUCKET": bucket,
        "RELAY_S3_PREFIX": "sdk",
        "RELAY_PROGRESS_INTERVAL_MS": "100",
        "RELAY_WORKFLOWS_DIR": str(WORKFLOWS),
        "RELAY_SCRATCH_DIR": str(workdir / "scratch"),
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    env.update(extra)
    return env


@contextlib.contextmanager
def spawn_relay_worker(runpod: Emulator, workdir: Path, env: dict[str, str]) -> Iterator[RelayWorker]:
    log = workdir / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "handlers.worker"],
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = RelayWorker(process, log)
    try:
        wait_for(lambda: _connected(runpod, worker), 60, "the worker to ask for a job")
        yield worker
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _connected(runpod: Emulator, worker: RelayWorker) -> bool:
    if worker.process.poll() is not None:
        raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.output()}")
    return bool(runpod.admin("workers")["workers"])


def made(result: JobResult) -> list[Any]:
    """The outputs the graph made: without the thumbnails, posters and waveforms derived from them."""
    return [o for o in result.outputs if o.role is None]


def ui_image_graph() -> dict[str, Any]:
    """A UI-format (frontend) workflow: a 40x30 EmptyImage saved by SaveImage."""
    return {
        "last_node_id": 2,
        "last_link_id": 1,
        "nodes": [
            {
                "id": 1,
                "type": "EmptyImage",
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
                "widgets_values": [40, 30, 1, 255],
            },
            {
                "id": 2,
                "type": "SaveImage",
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
                "outputs": [],
                "widgets_values": ["relay/ui"],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "version": 0.4,
    }
