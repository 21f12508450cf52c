"""Every install carries the workflow library; a missing one is a clear start-up error in every component, and one
variable (RELAY_WORKFLOWS_DIR) names another library for the worker, the CLI and dispatch alike."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from handlers.cli import main
from handlers.common import ConfigError
from handlers.dispatch._config import load_settings
from handlers.worker._config import WorkerConfig
from handlers.workflow import LibraryMissingError, _library, require_library

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("comfy_relay-*.whl")
    return built


def test_the_wheel_carries_the_workflow_library_and_the_image_tools(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    library = {str(p.relative_to(REPO)) for p in (REPO / "workflows").rglob("*.json")}
    assert library and library <= names
    assert "workflows/_catalogue/object_info.json" in names
    assert {"handlers/image/_fetch.py", "handlers/image/_lock.py", "handlers/image/__main__.py"} <= names


def test_a_missing_bundled_library_is_a_worker_start_up_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_library, "BUNDLED_WORKFLOWS", tmp_path / "site-packages" / "workflows")
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env({})
    [problem] = info.value.problems
    assert "the bundled workflow library is missing" in problem and "RELAY_WORKFLOWS_DIR" in problem


def test_a_wrong_relay_workflows_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env({"RELAY_WORKFLOWS_DIR": str(tmp_path / "nope")})
    assert info.value.problems == [
        f"RELAY_WORKFLOWS_DIR={str(tmp_path / 'nope')!r}: no workflow library at {tmp_path / 'nope'}"
    ]
    assert WorkerConfig.from_env({"RELAY_WORKFLOWS_DIR": str(tmp_path)}).workflows_dir == tmp_path


def test_the_cli_reads_the_same_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELAY_WORKFLOWS_DIR", str(tmp_path / "missing"))
    assert main(["image", "lock", "--check"]) == 1
    assert "RELAY_WORKFLOWS_DIR=" in capsys.readouterr().err
    with pytest.raises(LibraryMissingError):
        require_library()


_DISPATCH_ENV = {
    "RELAY_JOBS_TABLE": "jobs",
    "RELAY_S3_BUCKET": "bucket",
    "RUNPOD_ENDPOINT_ID": "ep",
    "RUNPOD_API_KEY": "key",
    "RELAY_WEBHOOK_URL": "https://hooks.example.invalid",
    "RELAY_WEBHOOK_TOKEN": "t" * 16,
    "RELAY_PROGRESS_SECRET": "s" * 16,
    "RELAY_API_TOKEN": "a" * 16,
}


def test_dispatch_reads_relay_workflows_dir_and_names_the_old_variable(tmp_path: Path) -> None:
    assert load_settings({**_DISPATCH_ENV, "RELAY_WORKFLOWS_DIR": str(tmp_path)}).workflows == tmp_path
    with pytest.raises(ConfigError) as info:
        load_settings({**_DISPATCH_ENV, "RELAY_WORKFLOWS": str(tmp_path)})
    assert "RELAY_WORKFLOWS was renamed RELAY_WORKFLOWS_DIR" in str(info.value)


def test_dispatch_start_up_fails_on_a_missing_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.dispatch._runtime import build_runtime

    for key in ("AWS_ENDPOINT_URL",):
        monkeypatch.delenv(key, raising=False)
    env = {**_DISPATCH_ENV, "RELAY_WORKFLOWS_DIR": str(tmp_path / "gone"), "AWS_DEFAULT_REGION": "us-east-1"}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(ConfigError, match="no workflow library at"):
        build_runtime(env)
