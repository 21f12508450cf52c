"""``comfy-relay image smoke TAG``: run a built image on the CPU and push one job through it end to end.

moto (S3) and the RunPod platform emulator serve on the host's loopback; the container (``buildah run``, which
shares the host's network) runs the image's own start command with ComfyUI on ``--cpu``, its worker connected to the
emulator. One job goes in through RunPod ``/run``: an inline graph that loads the ``test`` profile's generated
upscale model in the real ComfyUI. Checked: the job completes, its outputs and ``manifest.json`` are in S3, progress
was streamed. Needs the ``local`` extra, buildah, and an image built with the ``test`` profile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx

__all__ = ["SMOKE_MODEL", "SmokeError", "smoke", "smoke_workflow"]

SMOKE_MODEL: Final = "relay-test-srvgg-x2.safetensors"
_BUCKET: Final = "comfy-relay-smoke"
_AWS: Final = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class SmokeError(RuntimeError):
    """The image did not run the job end to end; the message says what was missing and ends with its log."""


def smoke_workflow(width: int = 64, height: int = 48) -> dict[str, Any]:
    """A canvas upscaled x2 by the generated model, then saved: a real model load and a real output."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": 1, "color": 3368601},
        },
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": SMOKE_MODEL}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "smoke"}},
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _buildah() -> str:
    found = shutil.which("buildah")
    if found is None:
        raise SmokeError("buildah is not installed (Debian: apt-get install buildah)")
    return found


@contextlib.contextmanager
def _container(tag: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    buildah = _buildah()
    name = f"comfy-relay-smoke-{uuid.uuid4().hex[:8]}"
    created = subprocess.run(  # noqa: S603
        [buildah, "from", "--name", name, tag],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise SmokeError(f"buildah from {tag} failed: {created.stderr.strip()}")
    argv = [buildah, "run", "--isolation", "chroot"]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    argv += [name, "--", "/usr/bin/tini", "--", "/opt/comfy-relay/start.sh"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        subprocess.run([buildah, "rm", name], capture_output=True, check=False)  # noqa: S603


def smoke(tag: str, *, timeout_s: float = 900.0) -> dict[str, Any]:
    """Run the job; returns figures (time to first job, job time) or raises :class:`SmokeError`."""
    import boto3  # noqa: PLC0415
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    from handlers.local._serving import ServerThread  # noqa: PLC0415
    from handlers.local.runpod import EmulatorConfig, create_app, worker_environment  # noqa: PLC0415

    config = EmulatorConfig(
        endpoint_id="smoke", api_key="smoke-api-key", worker_key="smoke-worker-key", job_take_wait_s=1.0
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines would bury the report
    moto_port, comfy_port = _free_port(), _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    moto_url = f"http://127.0.0.1:{moto_port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name=_AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=_AWS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=_BUCKET)
    log_dir = Path(tempfile.mkdtemp(prefix="comfy-relay-smoke-"))
    log = log_dir / "container.log"
    try:
        with ServerThread(lambda: create_app(config)) as runpod:
            env = {
                **worker_environment(runpod.url, config, pod_id="smoke-worker", ping_interval_ms=2000),
                **_AWS,
                "AWS_ENDPOINT_URL_S3": moto_url,
                "RELAY_S3_BUCKET": _BUCKET,
                "RELAY_S3_PREFIX": "smoke",
                "RELAY_STREAM": "1",
                # The SDK's start-up checks dial 8.8.8.8; nothing here leaves loopback.
                "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
                "COMFYUI_URL": f"http://127.0.0.1:{comfy_port}",
                "COMFYUI_COMMAND": (
                    f"python /opt/comfyui/main.py --cpu --listen 127.0.0.1 --port {comfy_port} --disable-auto-launch "
                    "--extra-model-paths-config /opt/comfy-relay/extra_model_paths.yaml "
                    "--input-directory /opt/comfyui/input --output-directory /opt/comfyui/output "
                    "--temp-directory /opt/comfyui/temp"
                ),
            }
            with httpx.Client(
                base_url=f"{runpod.url}/v2/{config.endpoint_id}",
                headers={"Authorization": f"Bearer {config.api_key}"},
                timeout=30,
            ) as api:
                submitted = api.post("/run", json={"input": {"workflow": smoke_workflow()}})
                submitted.raise_for_status()
                job_id = submitted.json()["id"]
                deadline = time.monotonic() + timeout_s
                with _container(tag, env, log) as process:
                    started = time.monotonic()
                    took_at, status, stream = _follow(api, job_id, process, deadline)
                    finished = time.monotonic()
            return _verify(s3, job_id, status, stream, to_take_s=took_at - started, job_s=finished - took_at, log=log)
    except SmokeError as exc:
        raise SmokeError(f"{exc}\ncontainer log ({log}) ends with:\n{_tail(log)}") from None
    finally:
        s3.close()
        moto.stop()


def _follow(
    api: httpx.Client, job_id: str, process: subprocess.Popen[bytes], deadline: float
) -> tuple[float, dict[str, Any], list[Any]]:
    took_at: float | None = None
    stream: list[Any] = []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SmokeError(f"the container exited with status {process.returncode} before the job ended")
        status = api.get(f"/status/{job_id}").json()
        if took_at is None and status.get("status") != "IN_QUEUE":
            took_at = time.monotonic()
        stream += [chunk.get("output") for chunk in api.get(f"/stream/{job_id}").json().get("stream", [])]
        if status.get("status") in {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}:
            return took_at or time.monotonic(), status, stream
        time.sleep(0.5)  # polling a real service, as a RunPod client does
    raise SmokeError("the job did not finish in time")


def _verify(
    s3: Any, job_id: str, status: dict[str, Any], stream: list[Any], *, to_take_s: float, job_s: float, log: Path
) -> dict[str, Any]:
    if status.get("status") != "COMPLETED":
        raise SmokeError(f"the job ended {status.get('status')}: {status.get('error') or status.get('output')}")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=_BUCKET).get("Contents", [])]
    images = [k for k in keys if k.endswith(".png")]
    manifests = [k for k in keys if k.endswith("manifest.json")]
    progress = [c for c in stream if isinstance(c, dict) and "progress" in str(c)]
    missing = [
        what
        for what, ok in (("an image in S3", images), ("manifest.json in S3", manifests), ("progress", progress))
        if not ok
    ]
    if missing:
        raise SmokeError(f"job {job_id} completed without {', '.join(missing)} (S3 keys: {keys})")
    manifest = json.loads(s3.get_object(Bucket=_BUCKET, Key=manifests[0])["Body"].read())
    sizes = sorted({(o.get("width"), o.get("height")) for o in manifest.get("outputs", []) if isinstance(o, dict)})
    if (128, 96) not in sizes:  # the 64x48 canvas through the x2 model: the real upscaler ran
        raise SmokeError(f"job {job_id}: expected a 128x96 output from the x2 upscale model, the manifest has {sizes}")
    return {
        "job": job_id,
        "status": status["status"],
        "s3_outputs": ", ".join(images),
        "manifest": ", ".join(manifests),
        "output_sizes": ", ".join(f"{w}x{h}" for w, h in sizes),
        "progress_chunks": len(progress),
        "container_start_to_job_taken_s": round(to_take_s, 1),
        "job_run_s": round(job_s, 1),
        "container_log": str(log),
    }


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":  # pragma: no cover
    print(smoke(sys.argv[1]))
