"""What a newcomer trips on (issue 16), each driven as a subprocess the way a person types it."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from PIL import Image

from handlers.local.stack import StackInfo, read_state
from handlers.local.stack._state import write_state
from tests.cli.conftest import CliRunner

# ------------------------------------------------------------------------------ finding the stack from anywhere


def test_the_stack_is_found_from_any_folder(run_cli: CliRunner, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    state = xdg / "comfy-relay"
    # A stack as `local up` records it (its supervisor alive: this test's process).
    write_state(StackInfo(supervisor_pid=os.getpid(), state_dir=str(state), urls={"runpod": "http://127.0.0.1:9"}))
    elsewhere = tmp_path / "some" / "project"
    elsewhere.mkdir(parents=True)
    found = run_cli("local", "status", "--json", cwd=elsewhere, env={"XDG_STATE_HOME": str(xdg)})
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["supervisor_pid"] == os.getpid()


def test_no_stack_says_where_it_looked(run_cli: CliRunner, tmp_path: Path) -> None:
    result = run_cli("run", "image/solid-color", env={"XDG_STATE_HOME": str(tmp_path / "x")})
    assert result.returncode == 1
    assert f"looked in {tmp_path / 'x' / 'comfy-relay'}" in result.stderr
    assert "$XDG_STATE_HOME" in result.stderr
    assert "comfy-relay local up" in result.stderr
    chosen = run_cli("local", "env", env={"COMFY_RELAY_STATE_DIR": str(tmp_path / "mine")})
    assert f"looked in {tmp_path / 'mine'}, from $COMFY_RELAY_STATE_DIR" in chosen.stderr


# ----------------------------------------------------------------------------------------------- help and words


def test_version_and_help(run_cli: CliRunner) -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("comfy-relay ")
    for args, words in [
        (("status", "--help"), ["queue job id", "RunPod job id", "--wait"]),
        (("cancel", "--help"), ["queue job id"]),
        (("enqueue", "--help"), ["lowPriority", "--job-id", "--wait"]),
        (("run", "--help"), ["-p image=photo.png", "--force", "one JSON document"]),
        (("emulate", "--help"), ["the worker protocol"]),
        (("emulate", "runpod", "--help"), ["0 picks a free port", "this machine only"]),
        (("local", "up", "--help"), ["--stream", "result mode"]),
    ]:
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        for word in words:
            assert word in " ".join(result.stdout.split()), (args, word)


def test_every_template_has_typed_params_and_an_example(run_cli: CliRunner) -> None:
    shown = run_cli("templates", "show", "image/solid-color", "--json")
    params = {p["name"]: p["type"] for p in json.loads(shown.stdout)["params"]}
    assert params == {"width": "int", "height": "int", "color": "int"}
    listing = run_cli("templates", "list")
    assert "(no manifest)" not in listing.stdout
    inpaint = run_cli("templates", "show", "image/sdxl-inpaint")
    assert "comfy-relay run image/sdxl-inpaint -p image=photo.png -p mask=mask.png" in inpaint.stdout


def test_a_size_off_the_grid_is_refused_not_rounded(run_cli: CliRunner) -> None:
    result = run_cli("run", "image/sdxl-basic", "-p", "prompt=x", "-p", "width=1001")
    assert result.returncode == 2
    assert "input.params.width: must be 64 plus a multiple of 8 (got 1001; nearest: 1000 or 1008)" in result.stderr
    bad = run_cli("run", "image/solid-color", "-p", "width=wide")
    assert bad.returncode == 2 and "input.params.width: must be an integer" in bad.stderr  # typed before sending


def test_a_missing_media_file_is_named(run_cli: CliRunner, tmp_path: Path) -> None:
    result = run_cli("run", "image/blur", "-p", "image=nope.png")
    assert result.returncode == 2
    assert f"input.params.image: no file {tmp_path / 'nope.png'}" in result.stderr


# ---------------------------------------------------------------------------------------- against a local stack


def _photo(folder: Path) -> Path:
    path = folder / "photo.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(path)
    return path


def test_media_by_path_either_way_and_out_never_overwrites(
    run_cli: CliRunner, local_stack: Path, tmp_path: Path
) -> None:
    _photo(tmp_path)
    out = tmp_path / "out"
    stack = ("--local", "--state-dir", str(local_stack))
    first = run_cli("run", "image/blur", "-p", "image=photo.png", "--out", str(out), "--json", *stack)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_cli("run", "image/blur", "--media", "image=photo.png", "--out", str(out), "--json", *stack)
    assert second.returncode == 0, second.stdout + second.stderr
    saved = [Path(json.loads(r.stdout)["saved"][0]) for r in (first, second)]
    assert saved[0] != saved[1]  # two runs of one template: two files, each named by its job
    for path, result in zip(saved, (first, second), strict=True):
        assert path.name.startswith(json.loads(result.stdout)["id"] + "_")
        with Image.open(path) as image:
            assert image.size == (40, 30)


def test_status_and_cancel_take_either_id_and_show_the_record(run_cli: CliRunner, local_stack: Path) -> None:
    stack = ("--local", "--state-dir", str(local_stack))
    job_id = f"newcomer-{uuid.uuid4().hex[:8]}"
    sent = run_cli("enqueue", "image/solid-color", "-p", "width=16", "-p", "height=16", "--job-id", job_id, *stack)
    assert sent.returncode == 0, sent.stderr
    assert f"enqueued job {job_id}" in sent.stdout

    waited = run_cli("status", job_id, "--wait", "--json", "--timeout", "60", *stack)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    view = json.loads(waited.stdout)
    assert (view["job_id"], view["state"]) == (job_id, "SUCCEEDED")
    assert view["record"]["attempt"] == 1
    [output] = [o for o in view["outputs"] if not o.get("role")]
    assert output["s3_uri"].startswith("s3://") and output["url"]

    by_runpod = run_cli("status", view["runpod_id"], *stack)
    assert by_runpod.returncode == 0, by_runpod.stderr
    assert f"job {job_id} (RunPod job {view['runpod_id']}): SUCCEEDED" in by_runpod.stdout
    assert output["s3_uri"] in by_runpod.stdout

    cancelled = run_cli("cancel", job_id, *stack)
    assert cancelled.returncode == 0
    assert f"job {job_id} had already ended (done): nothing to cancel" in cancelled.stdout

    unknown = run_cli("status", "no-such-job", *stack)
    assert unknown.returncode == 1
    assert "no job no-such-job in the jobs table" in unknown.stderr
    assert "{" not in unknown.stderr  # no raw dict on a 404


def test_enqueue_prints_the_job_id_and_watch_exits_when_it_ends(run_cli: CliRunner, local_stack: Path) -> None:
    stack = ("--local", "--state-dir", str(local_stack))
    sent = run_cli("enqueue", "image/solid-color", "-p", "width=8", "-p", "height=8", "--json", *stack)
    assert sent.returncode == 0, sent.stderr
    job_id = json.loads(sent.stdout)["job_id"]
    assert job_id  # the id the record is keyed by, not only the SQS message id
    watched = run_cli("jobs", "watch", "--json", "--timeout", "60", *stack)
    assert watched.returncode == 0, watched.stderr
    records = [json.loads(line) for line in watched.stdout.splitlines()]
    assert any(r["job_id"] == job_id and r["state"] == "SUCCEEDED" for r in records)


def test_a_job_that_ends_badly_is_said_once(run_cli: CliRunner, local_stack: Path) -> None:
    result = run_cli(
        "run", "image/sdxl-basic", "-p", "prompt=x", "-p", "steps=2", "--override", "KSampler.sampler_name=bogus",
        "--wait", "--local", "--state-dir", str(local_stack),
    )  # fmt: skip
    assert result.returncode == 1
    everything = result.stdout + result.stderr
    assert "failed failed" not in everything and "done completed" not in everything
    assert everything.count("'bogus' not in") == 1  # the node error, not again in a summary above it
    info = read_state(local_stack)
    assert info is not None
    worker_log = Path(info.state_dir) / "logs" / "latest" / "worker-1.log"
    text = worker_log.read_text()
    assert '"level": "DEBUG"' not in text and "job-take" not in text  # the SDK's polling stays out of it
    assert "HTTP Request:" not in text
    moto_log = (worker_log.parent / "moto.log").read_text()
    assert "HTTP/1.1" not in moto_log  # no line per SQS poll or DynamoDB read
