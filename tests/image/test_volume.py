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
