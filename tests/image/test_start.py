"""The image's start sequence, without the image: worker_image/start.sh fetches the profile's models onto a "network
volume", links them into the models folder, and becomes the worker, which starts ComfyUI through COMFYUI_COMMAND
(here the ComfyUI emulator) and takes a job from the RunPod emulator; SIGTERM stops the worker and its ComfyUI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from handlers.image import load_lock
from tests.local.runpod.conftest import FAST_CONFIG, serve_emulator, wait_for
from tests.worker.conftest import make_s3_client

REPO = Path(__file__).resolve().parents[2]
MODEL = "relay-test-srvgg-x2.safetensors"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_start_sh_fetches_links_and_runs_a_job(tmp_path: Path, moto_endpoint: str, s3_bucket: str) -> None:
    lock = load_lock(REPO / "worker_image" / "lock.json")
    assert [m.file for m in lock.models_of("test")] == [MODEL]
    volume, baked, comfy = tmp_path / "volume", tmp_path / "baked", tmp_path / "comfyui"
    baked.mkdir()
    port = _free_port()
    with serve_emulator(FAST_CONFIG) as emulator:
        env = {
            **os.environ,
            **emulator.worker_env(ping_interval_ms=1000),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path),
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RELAY_LOCK_FILE": str(REPO / "worker_image" / "lock.json"),
            "RELAY_PROFILE": "test",
            "RELAY_FETCH_MODELS": "1",
            "RELAY_VOLUME_MODELS": str(volume),
            "RELAY_BAKED_MODELS": str(baked),
            "COMFYUI_URL": f"http://127.0.0.1:{port}",
            "COMFYUI_COMMAND": (
                f"{sys.executable} -m handlers.cli emulate comfyui --host 127.0.0.1 --port {port} "
                f"--data-dir {comfy} --models {baked}"
            ),
            "COMFYUI_INPUT_DIR": str(comfy / "input"),
            "COMFYUI_OUTPUT_DIR": str(comfy / "output"),
            "RELAY_S3_BUCKET": s3_bucket,
            "AWS_ENDPOINT_URL_S3": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        log = tmp_path / "start.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["/bin/sh", str(REPO / "worker_image" / "start.sh")],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            graph = {
                "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 0}},
                "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": MODEL}},
                "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
                "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "start"}},
            }
            job_id = emulator.run({"input": {"workflow": graph}})
            status = emulator.wait_status(job_id, "COMPLETED", "FAILED", timeout=120)
            output = log.read_text(errors="replace")
            assert status["status"] == "COMPLETED", f"{status}\n{output}"
            # The model was made on the volume (sha256-checked) and linked where ComfyUI looks.
            made = volume / "upscale_models" / MODEL
            assert made.is_file() and (baked / "upscale_models").is_symlink()
            assert "1 generated" in output and "linked 1 entries" in output
            keys = [o["Key"] for o in make_s3_client(moto_endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"]]
            assert any(k.endswith(".png") for k in keys) and any(k.endswith("manifest.json") for k in keys)
            manifest = json.loads(
                make_s3_client(moto_endpoint)
                .get_object(Bucket=s3_bucket, Key=next(k for k in keys if k.endswith("manifest.json")))["Body"]
                .read()
            )
            assert [(o["width"], o["height"]) for o in manifest["outputs"] if not o.get("role")] == [(64, 48)]
            # SIGTERM (what tini forwards) reaches the worker, which stops its ComfyUI.
            assert not _refuses(port)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) is not None
            wait_for(lambda: _refuses(port), 30, "the supervised ComfyUI to stop")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the process group
