"""``comfy-relay smoke``: every template (or a subset) once, a table, and an exit status that says whether all ran.

Run as a subprocess, the way ops run it: worker-less against the ComfyUI emulator (``--comfyui``) and through the
local stack's RunPod endpoint (``--local``).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from handlers.cli._smoke import SelectionError, SmokeRow, render_table, select_templates, smoke_jobs
from handlers.local.stack import place_model_files, place_sample_inputs
from tests.cli.conftest import CliRunner
from tests.worker._relay import WORKFLOWS, Comfy, serve_comfy


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    """The emulator with every template's models except Flux.1 [dev]'s diffusion model: image/flux-dev fails."""
    root = tmp_path_factory.mktemp("smoke-comfy")
    models = root / "models"
    place_model_files(models, WORKFLOWS)
    (models / "diffusion_models" / "flux1-dev.safetensors").unlink()
    place_sample_inputs(root / "data" / "input", WORKFLOWS)
    with serve_comfy(root / "data", models) as served:
        yield served


def test_comfyui_runs_the_worker_job_path_and_reports_each_template(
    run_cli: CliRunner, comfy: Comfy, tmp_path: Path
) -> None:
    names = ["image/sdxl-basic", "image/controlnet-pose-photo", "image/blur"]
    args = [arg for name in names for arg in ("--template", name)]
    result = run_cli("smoke", "--comfyui", comfy.url, *args, "--json", "--out", str(tmp_path / "out"))

    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["target"].startswith(f"ComfyUI {comfy.url}")
    rows = {row["template"]: row for row in document["results"]}
    assert list(rows) == names
    for row in rows.values():
        assert row["ok"] and row["status"] == "ok" and row["error"] is None
        assert 0 <= row["first_output_s"] <= row["total_s"]
        assert row["job_id"].startswith("smoke-")
    # Outputs kept in memory (no RELAY_S3_BUCKET): measured, with the worker's own description of each.
    made = {name: [o for o in row["outputs"] if not o.get("role")] for name, row in rows.items()}  # not previews
    assert [(o["kind"], o["width"], o["height"]) for o in made["image/sdxl-basic"]] == [("image", 1024, 1024)]
    photo = made["image/controlnet-pose-photo"]
    assert sorted((o["width"], o["height"]) for o in photo) == [(832, 1216), (1024, 1024)]  # picture, pose map
    assert all(o["s3_uri"].startswith("s3://comfy-relay-smoke-memory/") for o in photo)
    # --out: the bytes the worker "stored" in memory, saved per template as `run --out` names files.
    saved = [Path(p) for p in rows["image/controlnet-pose-photo"]["saved"]]
    assert len(saved) == 2 and all(p.parent == tmp_path / "out" / "image-controlnet-pose-photo" for p in saved)
    assert all(p.name.startswith(rows["image/controlnet-pose-photo"]["job_id"] + "_") for p in saved)
    sizes = []
    for path in saved:
        with Image.open(path) as image:
            sizes.append(image.size)
    assert sorted(sizes) == [(832, 1216), (1024, 1024)]


def test_a_failing_template_is_in_the_table_and_the_exit_status_is_1(run_cli: CliRunner, comfy: Comfy) -> None:
    result = run_cli("smoke", "--comfyui", comfy.url, "--template", "image/flux-dev", "--template", "image/solid-color")

    assert result.returncode == 1, result.stdout + result.stderr
    table = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 5}
    assert "ok" in table["image/solid-color"] and "1 image (512x512)" in table["image/solid-color"]
    assert "failed" in table["image/flux-dev"]
    # The reason follows the table: ComfyUI's own validation error, as the worker maps it.
    assert re.search(r"✗ image/flux-dev \(job smoke-[0-9a-f]{8}-image-flux-dev\): workflow_invalid:", result.stdout)
    assert "flux1-dev.safetensors" in result.stdout
    assert "1 of 2 templates failed" in result.stdout
    # Each job was reported as it ended (stderr), so a long GPU run shows where it is.
    assert "✓ image/solid-color" in result.stderr and "✗ image/flux-dev" in result.stderr
    assert result.stderr.index("… image/flux-dev started") < result.stderr.index("✗ image/flux-dev")


def test_local_runs_through_the_stack_endpoint(run_cli: CliRunner, local_stack: Path, tmp_path: Path) -> None:
    result = run_cli(
        "smoke",
        "--local",
        "--state-dir",
        str(local_stack),
        "--template",
        "image/flux-identity",
        "--template",
        "image/controlnet-pose",
        "--parallel",
        "2",
        "--json",
        "--out",
        str(tmp_path / "out"),
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["target"].startswith("RunPod endpoint http://127.0.0.1:")
    sizes = {}
    for row in document["results"]:
        assert row["ok"], row
        assert row["first_output_s"] is not None and row["first_output_s"] <= row["total_s"]
        (output,) = [o for o in row["outputs"] if not o.get("role")]  # what the graph made, not derived previews
        assert output["kind"] == "image" and output["s3_uri"].startswith("s3://")
        sizes[row["template"]] = (output["width"], output["height"])
        assert row["saved"] and all(Path(p).read_bytes() for p in row["saved"])  # fetched from the stack's S3
    assert sizes == {"image/flux-identity": (896, 1152), "image/controlnet-pose": (832, 1216)}


def test_unknown_templates_and_profiles_run_nothing(run_cli: CliRunner) -> None:
    result = run_cli("smoke", "--comfyui", "http://127.0.0.1:9", "--template", "image/nope")
    assert result.returncode == 2 and "unknown template(s): image/nope" in result.stderr
    result = run_cli("smoke", "--comfyui", "http://127.0.0.1:9", "--profile", "nope")
    assert result.returncode == 2 and "nope" in result.stderr


def test_selection_by_profile_name_and_library() -> None:
    assert "image/flux-identity" in select_templates("flux", [])
    assert "image/controlnet-pose" in select_templates("sdxl", [])
    every = select_templates(None, [])
    assert "ava/image/sdxl-basic" in every and "image/controlnet-pose-photo" in every
    assert select_templates(None, ["image/blur", "image/blur"]) == ["image/blur"]
    with pytest.raises(SelectionError):
        select_templates(None, ["image/nope"])
    jobs = {job.template: job for job in smoke_jobs(every)}
    assert jobs["image/controlnet-pose"].input is not None
    assert [m["name"] for m in jobs["image/controlnet-pose"].input["media"]] == ["pose_image"]


def test_table_lists_every_row_and_the_failures_reasons() -> None:
    ok, bad = SmokeRow("image/blur"), SmokeRow("image/flux-dev")
    thumbnail = {"kind": "image", "width": 16, "height": 12, "role": "thumbnail"}
    ok.finish(status="ok", outputs=[{"kind": "image", "width": 64, "height": 48}] * 2 + [thumbnail], error=None)
    bad.finish(status="failed", outputs=[], error="execution_failed: boom")
    empty = SmokeRow("image/solid-color")
    empty.finish(status="ok", outputs=[], error=None)
    assert (ok.ok, bad.ok, empty.ok) == (True, False, False)  # success without outputs is not a success
    buffer = io.StringIO()
    render_table(Console(file=buffer, width=70), [ok, bad, empty], "test")
    text = buffer.getvalue()
    assert "│ image/solid-color │" in text  # names are never cut, even in a narrow terminal
    assert "2 image" in text and "derived" in text  # the outputs column wraps instead
    assert "✗ image/flux-dev: execution_failed: boom" in text
    assert "✗ image/solid-color: the job succeeded but reported no outputs" in text
    assert "2 of 3 templates failed" in text


class _StuckEndpoint:
    """A RunPod endpoint whose job never ends: it records the cancel."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    async def run(self, job_input: dict[str, object]) -> dict[str, object]:
        return {"id": "rp-1", "status": "IN_QUEUE"}

    async def stream(self, job_id: str) -> dict[str, object]:
        return {"status": "IN_PROGRESS", "stream": []}

    async def status(self, job_id: str) -> dict[str, object]:
        return {"id": job_id, "status": "IN_PROGRESS"}

    async def cancel(self, job_id: str) -> dict[str, object]:
        self.cancelled.append(job_id)
        return {"id": job_id, "status": "CANCELLED"}


async def test_a_job_still_running_after_the_timeout_is_cancelled() -> None:
    from handlers.cli._smoke import SmokeJob, endpoint_runner

    api = _StuckEndpoint()
    row = SmokeRow("image/blur")
    await endpoint_runner(api, timeout_s=0.05, poll_s=0.01)(SmokeJob("image/blur", {"template": "image/blur"}), row)
    assert api.cancelled == ["rp-1"]
    assert (row.ok, row.status) == (False, "timed out") and row.error is not None and "cancelled" in row.error


async def test_a_comfyui_that_does_not_answer_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.cli import _smoke
    from tests.worker._relay import free_port

    monkeypatch.setattr(_smoke, "READY_TIMEOUT_S", 0.3)
    url = f"http://127.0.0.1:{free_port()}"
    runtime, kept = _smoke.worker_runtime(url)
    assert kept is not None  # no RELAY_S3_BUCKET here: outputs would be kept in memory
    try:
        with pytest.raises(_smoke._Unusable, match=r"was not ready by the deadline \(waited 0.3s\)"):
            await _smoke._comfyui_answers(runtime, url)
    finally:
        await runtime.aclose()
