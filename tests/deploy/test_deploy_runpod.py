"""``comfy-relay deploy runpod`` end to end against the RunPod emulator's management routes (``/v1``), and a real
``runpod`` SDK worker taking a job from the endpoint the command created."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.cli import main
from tests.local.runpod.conftest import FAST_CONFIG, Emulator, serve_emulator, spawn_worker


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Any:
    with serve_emulator(FAST_CONFIG) as served:
        monkeypatch.setenv("RUNPOD_REST_URL", f"{served.url}/v1")
        monkeypatch.setenv("RUNPOD_API_KEY", FAST_CONFIG.api_key)
        yield served


def deploy(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["deploy", "runpod", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def rest(emulator: Emulator, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {FAST_CONFIG.api_key}"}
    return httpx.request(method, f"{emulator.url}/v1{path}", headers=headers, timeout=10, **kwargs)


BASE = ("--name", "relay", "--image", "registry.example/relay:1", "--gpu", "NVIDIA L4", "--gpu", "NVIDIA A40",
        "--workers-max", "2", "--idle-timeout", "30", "--execution-timeout", "900", "--env", "RELAY_S3_BUCKET=out",
        "--env", "AWS_SECRET_ACCESS_KEY={{ RUNPOD_SECRET_aws_secret }}")  # fmt: skip


def test_create_then_nothing_to_do_then_an_image_update(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = deploy(capsys, *BASE)
    assert code == 0, out
    assert "template 'relay-template': create" in out and "endpoint 'relay': create" in out
    assert "RUNPOD_SECRET_aws_secret" not in out  # env values are never printed, only names
    (template,) = rest(emulator, "GET", "/templates").json()
    assert template["imageName"] == "registry.example/relay:1" and template["isServerless"] is True
    assert template["env"] == {"RELAY_S3_BUCKET": "out", "AWS_SECRET_ACCESS_KEY": "{{ RUNPOD_SECRET_aws_secret }}"}
    (endpoint,) = rest(emulator, "GET", "/endpoints").json()
    assert endpoint["templateId"] == template["id"]
    assert endpoint["gpuTypeIds"] == ["NVIDIA L4", "NVIDIA A40"]
    assert (endpoint["workersMax"], endpoint["idleTimeout"], endpoint["executionTimeoutMs"]) == (2, 30, 900_000)
    assert f"export RUNPOD_ENDPOINT_ID={endpoint['id']}" in out

    code, out = deploy(capsys, *BASE)
    assert code == 0, out
    assert "Nothing to do" in out and f"Unchanged: template {template['id']}, endpoint {endpoint['id']}" in out
    assert rest(emulator, "GET", f"/endpoints/{endpoint['id']}").json()["version"] == endpoint["version"]

    changed = [a if a != "registry.example/relay:1" else "registry.example/relay:2" for a in BASE]
    code, out = deploy(capsys, *changed, "--dry-run")
    assert code == 0, out
    assert "imageName: 'registry.example/relay:1' -> 'registry.example/relay:2'" in out and "Dry run" in out
    assert rest(emulator, "GET", f"/templates/{template['id']}").json()["imageName"].endswith(":1")

    code, out = deploy(capsys, *changed, "--workers-min", "1")
    assert code == 0, out
    assert rest(emulator, "GET", f"/templates/{template['id']}").json()["imageName"].endswith(":2")
    after = rest(emulator, "GET", f"/endpoints/{endpoint['id']}").json()
    assert after["workersMin"] == 1 and after["version"] == endpoint["version"] + 1
    assert len(rest(emulator, "GET", "/endpoints").json()) == 1  # updated by name, never a second one


def test_the_key_comes_from_the_environment_and_a_wrong_one_is_refused(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY")
    code, out = deploy(capsys, *BASE)
    assert code == 2 and "RUNPOD_API_KEY is not set" in out
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_WRONG")
    code, out = deploy(capsys, *BASE)
    assert code == 1 and "refused the API key" in out
    assert rest(emulator, "GET", "/templates").json() == []


def test_invalid_settings_get_runpods_400(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = deploy(capsys, "--name", "x", "--image", "i:1", "--gpu", "NVIDIA GeForce GTX 280")
    assert code == 1 and "HTTP 400" in out and "gpuTypeIds" in out


def test_management_routes_as_rest_runpod_io_serves_them(emulator: Emulator) -> None:
    assert httpx.get(f"{emulator.url}/v1/templates").status_code == 401
    assert rest(emulator, "POST", "/templates", json={"name": "t"}).status_code == 400  # imageName is required
    created = rest(emulator, "POST", "/templates", json={"name": "t", "imageName": "i:1", "isServerless": True})
    assert created.status_code == 200
    body = created.json()
    assert (body["containerDiskInGb"], body["volumeMountPath"], body["category"]) == (50, "/workspace", "NVIDIA")
    assert rest(emulator, "POST", "/templates", json={"name": "t", "imageName": "i:2"}).status_code == 400
    assert rest(emulator, "PATCH", "/templates/nope", json={"imageName": "x"}).status_code == 404
    assert rest(emulator, "PATCH", f"/templates/{body['id']}", json={"isServerless": False}).status_code == 400
    endpoint = rest(emulator, "POST", "/endpoints", json={"templateId": body["id"], "flashboot": True}).json()
    assert "flashboot" not in endpoint  # write-only, as in the published Endpoint object
    assert (
        rest(emulator, "POST", f"/endpoints/{endpoint['id']}/update", json={"workersMax": 5}).json()["workersMax"] == 5
    )
    assert rest(emulator, "DELETE", f"/templates/{body['id']}").status_code == 400  # in use
    assert rest(emulator, "DELETE", f"/endpoints/{endpoint['id']}").status_code == 204
    public = httpx.post(f"{emulator.url}/v2/{endpoint['id']}/run", json={"input": {}},
                        headers={"Authorization": f"Bearer {FAST_CONFIG.api_key}"})  # fmt: skip
    assert public.status_code == 404


def test_a_worker_takes_a_job_from_the_endpoint_deploy_created(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = deploy(capsys, *BASE, "--json")
    assert code == 0, out
    endpoint_id = rest(emulator, "GET", "/endpoints").json()[0]["id"]
    config = dataclasses.replace(FAST_CONFIG, endpoint_id=endpoint_id)
    headers = {"Authorization": f"Bearer {config.api_key}"}
    with httpx.Client(base_url=f"{emulator.url}/v2/{endpoint_id}", headers=headers, timeout=30) as client:
        created = Emulator(emulator.server, config, client)
        with spawn_worker(created, "worker_echo", tmp_path):
            job_id = created.run({"input": {"prompt": "deployed"}})
            status = created.wait_status(job_id, "COMPLETED", "FAILED")
    assert status["status"] == "COMPLETED", status
    assert status["output"]["echo"] == {"prompt": "deployed"}
