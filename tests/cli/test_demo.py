"""``comfy-relay demo`` end to end, as a subprocess on a fresh local stack."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import CliRunner

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_runs_templates_both_ways_and_saves_outputs(run_cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    result = run_cli("demo", "--port-base", "0", "--state-dir", str(tmp_path / "state"), "--out", str(out))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 3 jobs succeeded." in result.stdout
    saved: dict[str, list[str]] = {path.parent.name: [] for path in out.rglob("*.png")}
    for path in out.rglob("*.png"):
        saved[path.parent.name].append(path.name)
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    # Through RunPod's /run: a template, and a job with three output nodes; through SQS: a template.
    assert sorted(saved) == ["queue-template", "run-multi", "run-template"]
    # Saved as <job id>_<ComfyUI's file name>: a second run never overwrites the first.
    names = sorted(name.split("_", 1)[1] for name in saved["run-multi"])
    assert names == ["seed-a-2x_00001_.png", "seed-a_00001_.png", "seed-b_00001_.png"]
    # The multi-output job's outputs were each announced once, as the worker reported them stored.
    announced = [
        line for line in result.stdout.splitlines() if "two seeds + upscale via RunPod /run: output of [" in line
    ]
    assert len([line for line in announced if ".thumbnail.webp" not in line]) == 3
    assert len([line for line in announced if ".thumbnail.webp" in line]) == 3  # each image's thumbnail, after it
    # The stack it started is gone: its state file was removed on the way out.
    assert not (tmp_path / "state" / "stack.json").exists()


def test_demo_reuses_a_running_stack(run_cli: CliRunner, local_stack: Path, tmp_path: Path) -> None:
    result = run_cli("demo", "--state-dir", str(local_stack), "--out", str(tmp_path / "outputs"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Reusing the local stack" in result.stdout
    assert (local_stack / "stack.json").exists()  # it is not ours to stop


def test_demo_all_runs_every_template_with_its_sample_inputs() -> None:
    from handlers.cli._demo_jobs import library_jobs
    from handlers.contract import JobInput
    from handlers.workflow import default_workflows_dir, list_templates

    jobs = library_jobs()
    expected = [f"{c}/{n}" if c else n for c, n in list_templates(default_workflows_dir())]
    assert [job.label.removesuffix(" via RunPod /run") for job in jobs] == expected
    assert len({job.key for job in jobs}) == len(jobs) and all(job.via == "runpod" for job in jobs)
    for job in jobs:
        parsed = JobInput.model_validate(job.input)  # every job is a valid job input as sent
        assert parsed.template is not None
    by_key = {job.key: job.input for job in jobs}
    assert by_key["ava-image-sdxl-basic"]["character"] == "ava"
    assert [m["name"] for m in by_key["image-sdxl-inpaint"]["media"]] == ["image", "mask"]
    assert by_key["audio-f5-tts"]["media"][0]["mime"] == "audio/wav"
