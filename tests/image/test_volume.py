"""`models link` (volume models where custom nodes look) and the fetch progress lines."""

from __future__ import annotations

import io
from pathlib import Path

from handlers.cli import main
from handlers.image import FetchResult, FetchStatus, ModelPin
from handlers.image._cli import link_missing
from handlers.image._progress import LineProgress, summary


def test_link_adds_what_the_image_lacks_and_keeps_what_it_has(tmp_path: Path) -> None:
    volume, baked = tmp_path / "volume", tmp_path / "baked"
    (volume / "insightface" / "models" / "antelopev2").mkdir(parents=True)
    (volume / "insightface" / "models" / "antelopev2" / "glintr100.onnx").write_bytes(b"v")
    (volume / "pulid").mkdir()
    (volume / "pulid" / "p.safetensors").write_bytes(b"v")
    (volume / "checkpoints").mkdir()
    (volume / "checkpoints" / "same.safetensors").write_bytes(b"volume")
    (baked / "insightface" / "models" / "buffalo_l").mkdir(parents=True)
    (baked / "checkpoints").mkdir()
    (baked / "checkpoints" / "same.safetensors").write_bytes(b"baked")
    made = link_missing(volume, baked)
    assert sorted(str(p.relative_to(baked)) for p in made) == ["insightface/models/antelopev2", "pulid"]
    assert (baked / "insightface" / "models" / "antelopev2" / "glintr100.onnx").read_bytes() == b"v"
    assert (baked / "insightface" / "models" / "buffalo_l").is_dir()  # the baked folder is untouched
    assert (baked / "checkpoints" / "same.safetensors").read_bytes() == b"baked"  # the image's file wins
    assert link_missing(volume, baked) == []  # idempotent: a second start links nothing new
    assert main(["models", "link", "--source", str(tmp_path / "none"), "--dest", str(baked)]) == 1


def test_progress_lines_and_summary() -> None:
    pin = ModelPin(folder="vae", file="a.bin", url="https://example.invalid/a", sha256="a" * 64, size=10_000_000)
    out = io.StringIO()
    progress = LineProgress(out, interval_s=0.0, count=2)
    progress.start(pin, 10_000_000, 2_000_000)
    progress.advance(pin, 3_000_000)
    progress.finish(FetchResult(pin, FetchStatus.DOWNLOADED, bytes=10_000_000, resumed=True))
    lines = out.getvalue().splitlines()
    assert lines == [
        "fetching vae/a.bin (10.0 MB, resuming at 2.0 MB)",
        "  vae/a.bin: 5.0 MB (50%)",
        "[1/2] downloaded vae/a.bin",
    ]
    failed = FetchResult(pin, FetchStatus.FAILED, error="HTTP 404 from https://example.invalid/a")
    text = summary([FetchResult(pin, FetchStatus.DOWNLOADED, bytes=10_000_000, resumed=True), failed])
    assert text.splitlines() == [
        "downloaded  vae/a.bin (10.0 MB, resumed)",
        "    failed  vae/a.bin: HTTP 404 from https://example.invalid/a",
        "1 downloaded, 1 failed",
    ]


def test_the_tools_run_alone_as_in_an_image_build(tmp_path: Path) -> None:
    """The Dockerfile copies only handlers/__init__.py and handlers/image/ before comfy-relay is installed: the
    fetcher must need nothing else of the package."""
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    tools = tmp_path / "relay-tools" / "handlers"
    tools.mkdir(parents=True)
    shutil.copy(repo / "handlers" / "__init__.py", tools / "__init__.py")
    shutil.copytree(repo / "handlers" / "image", tools / "image", ignore=shutil.ignore_patterns("__pycache__"))
    lock = repo / "worker_image" / "lock.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "handlers.image",
            "models",
            "fetch",
            "--lock",
            str(lock),
            "--profile",
            "test",
            "--dest",
            str(tmp_path / "models"),
            "--generated-only",
            "--no-progress",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tools.parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 generated" in result.stderr
    assert (tmp_path / "models" / "upscale_models" / "relay-test-srvgg-x2.safetensors").is_file()
