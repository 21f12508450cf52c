"""Ports, health checks, the state file and the model placeholders of the local stack."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from handlers.local._serving import ServerThread
from handlers.local.comfyui import EmulatorConfig, create_app
from handlers.local.stack import (
    Component,
    StackError,
    StackInfo,
    StackPorts,
    Supervisor,
    check_port_free,
    place_model_files,
    read_state,
    wait_healthy,
)
from handlers.local.stack._state import write_state


def test_ports_are_consecutive_from_the_base_or_picked_by_the_os() -> None:
    ports = StackPorts.from_base(9000)
    assert [ports.of(c) for c in Component] == [9000, 9001, 9002, 9003]
    assert ports.comfyui == 9000 and ports.lambda_url == 9003
    free = StackPorts.from_base(0)
    assert len({free.of(c) for c in Component}) == len(Component)
    with pytest.raises(ValueError, match="port base"):
        StackPorts.from_base(65534)


def test_a_taken_port_is_named_with_its_component() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(StackError) as caught:
            check_port_free("127.0.0.1", port, "RunPod emulator")
    message = str(caught.value)
    assert f"port {port}" in message
    assert "RunPod emulator" in message
    assert "already in use" in message
    assert "--port-base" in message
    check_port_free("127.0.0.1", port, "RunPod emulator")  # released: no error


def test_wait_healthy_returns_once_the_server_answers(tmp_path: Path) -> None:
    config = EmulatorConfig(data_dir=tmp_path)
    with ServerThread(lambda: create_app(config)) as server:
        wait_healthy("ComfyUI emulator", server.url + "/system_stats", time.monotonic() + 10)
        with pytest.raises(StackError, match="did not answer"):
            wait_healthy("ComfyUI emulator", server.url + "/nope", time.monotonic() + 0.3)


def test_wait_healthy_reports_a_child_that_died_with_its_log(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as supervisor:
        child = supervisor.start("broken", [sys.executable, "-c", "raise SystemExit('cannot start: no models')"])
        with pytest.raises(StackError) as caught:
            wait_healthy("broken part", "http://127.0.0.1:9/", time.monotonic() + 60, child=child)
    assert "broken part exited with status 1" in str(caught.value)
    assert "cannot start: no models" in str(caught.value)


def test_state_round_trip_and_stale_files(tmp_path: Path) -> None:
    info = StackInfo(supervisor_pid=os.getpid(), state_dir=str(tmp_path), urls={"runpod": "http://x"}, parts=["a"])
    write_state(info)
    assert read_state(tmp_path) == info
    # A state file whose supervisor is gone is stale: ignored and removed.
    dead = StackInfo(supervisor_pid=_dead_pid(), state_dir=str(tmp_path))
    write_state(dead)
    assert read_state(tmp_path) is None
    assert not (tmp_path / "stack.json").exists()


def _dead_pid() -> int:
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_model_placeholders_cover_the_templates(tmp_path: Path) -> None:
    created = place_model_files(tmp_path)
    sdxl = tmp_path / "checkpoints" / "sd_xl_base_1.0.safetensors"
    assert sdxl in created
    assert sdxl.stat().st_size == 0
    assert place_model_files(tmp_path) == []  # existing files are left alone
    # The custom packs' files are there too; a character's own LoRA is not: the worker provisions it from her pack.
    assert not (tmp_path / "loras" / "ava_sdxl_v1.safetensors").exists()
    assert (tmp_path / "ipadapter" / "ip-adapter-faceid-plusv2_sdxl.bin").is_file()
    assert (tmp_path / "checkpoints" / "F5-TTS" / "F5TTS_v1_Base.txt").is_file()


def test_sample_inputs_give_each_template_what_it_requires(tmp_path: Path) -> None:
    import wave

    from handlers.contract import JobInput
    from handlers.local.stack import SAMPLE_DATASET, place_sample_inputs, sample_job
    from handlers.workflow import default_workflows_dir, load_template

    created = place_sample_inputs(tmp_path)
    dataset = tmp_path / SAMPLE_DATASET
    # The training dataset only: mira's photos and voice come from her pack.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in created) == sorted(
        f"{SAMPLE_DATASET}/{p.name}" for p in dataset.iterdir()
    )
    captions = sorted(dataset.glob("*.txt"))
    assert len(captions) == len(list(dataset.glob("*.png"))) == 4
    assert all(c.read_text().startswith("ohwx_character, ") for c in captions)
    assert place_sample_inputs(tmp_path) == []

    root = default_workflows_dir()
    inpaint = JobInput.model_validate(sample_job(load_template(root, "image/sdxl-inpaint")))
    assert inpaint.params == {"image": "image", "mask": "mask", "prompt": inpaint.params["prompt"]}
    assert [m.name for m in inpaint.media] == ["image", "mask"]
    tts = JobInput.model_validate(sample_job(load_template(root, "audio/f5-tts")))
    (voice,) = tts.media
    (tmp_path / "voice.wav").write_bytes(voice.payload())
    with wave.open(str(tmp_path / "voice.wav")) as reader:
        assert reader.getnframes() / reader.getframerate() == 3.0
    training = sample_job(load_template(root, "train/lora-sdxl"))
    assert training["params"] == {"dataset": SAMPLE_DATASET, "trigger_word": "ohwx_character"}
    ava = sample_job(load_template(root, "image/sdxl-basic", character="ava"))
    assert ava["character"] == "ava" and set(ava["params"]) == {"prompt"}


def test_children_inherit_no_service_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.local.stack._stack import _base_env

    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://elsewhere")
    monkeypatch.setenv("COMFYUI_COMMAND", "python main.py")
    monkeypatch.setenv("RUNPOD_API_KEY", "real-key")
    monkeypatch.setenv("RELAY_JOBS_TABLE", "prod")
    monkeypatch.setenv("HOME_LIKE_VARIABLE", "kept")
    env = _base_env()
    assert not [k for k in env if k.startswith(("AWS_", "COMFYUI_", "RUNPOD_", "RELAY_"))]
    assert env["HOME_LIKE_VARIABLE"] == "kept"
    assert "127.0.0.1" in env["NO_PROXY"]
