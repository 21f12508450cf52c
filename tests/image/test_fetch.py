"""The model fetcher against a real HTTP server on 127.0.0.1 that drops, fails, and lies."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from handlers.cli import main
from handlers.image import FetchOptions, FetchStatus, ModelPin, fetch_models
from tests.image.conftest import ModelServer

pytestmark = pytest.mark.asyncio


async def no_sleep(_: float) -> None:
    return None


def options(**overrides: object) -> FetchOptions:
    base: dict[str, object] = {"attempts": 3, "environ": {}}
    base.update(overrides)
    return FetchOptions(**base)  # type: ignore[arg-type]


async def test_downloads_in_parallel_verified_and_in_place(model_server: ModelServer, tmp_path: Path) -> None:
    names = ["a.safetensors", "b.safetensors", "c.safetensors"]
    for name in names:
        model_server.add(name)
    model_server.barrier = 3  # each request waits until all three are in flight
    results = await fetch_models(
        [model_server.pin(n) for n in names], tmp_path, options=options(concurrency=3), sleep=no_sleep
    )
    assert [r.status for r in results] == [FetchStatus.DOWNLOADED] * 3
    assert model_server.peak == 3
    for name in names:
        assert (tmp_path / "checkpoints" / name).read_bytes() == model_server.files[name]
    assert not list(tmp_path.rglob("*.part"))


async def test_concurrency_is_bounded(model_server: ModelServer, tmp_path: Path) -> None:
    names = [f"m{i}.bin" for i in range(4)]
    for name in names:
        model_server.add(name, 50_000)
    results = await fetch_models([model_server.pin(n) for n in names], tmp_path, options=options(concurrency=1))
    assert all(r.status is FetchStatus.DOWNLOADED for r in results)
    assert model_server.peak == 1


async def test_a_dropped_transfer_resumes_with_a_range_request(model_server: ModelServer, tmp_path: Path) -> None:
    data = model_server.add("big.safetensors", 400_000)
    model_server.faults["big.safetensors"] = ["drop:150000"]
    [result] = await fetch_models([model_server.pin("big.safetensors")], tmp_path, options=options(), sleep=no_sleep)
    assert result.status is FetchStatus.DOWNLOADED and result.resumed
    first, second = model_server.hits("big.safetensors")
    assert "Range" not in first
    resumed_at = int(second["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 150_000
    assert (tmp_path / "checkpoints" / "big.safetensors").read_bytes() == data


async def test_a_partial_file_from_an_earlier_run_is_resumed(model_server: ModelServer, tmp_path: Path) -> None:
    data = model_server.add("x.safetensors")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".x.safetensors.part").write_bytes(data[:1000])
    [result] = await fetch_models([model_server.pin("x.safetensors")], tmp_path, options=options())
    assert result.status is FetchStatus.DOWNLOADED and result.resumed
    assert model_server.hits("x.safetensors")[0]["Range"] == "bytes=1000-"
    assert (folder / "x.safetensors").read_bytes() == data


async def test_a_server_that_ignores_ranges_gets_a_fresh_download(model_server: ModelServer, tmp_path: Path) -> None:
    data = model_server.add("y.safetensors")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".y.safetensors.part").write_bytes(data[:1000])
    model_server.faults["y.safetensors"] = ["ignore-range"]
    [result] = await fetch_models([model_server.pin("y.safetensors")], tmp_path, options=options())
    assert result.status is FetchStatus.DOWNLOADED and not result.resumed
    assert (folder / "y.safetensors").read_bytes() == data


async def test_404_fails_at_once(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.add("gone.bin")
    model_server.always["gone.bin"] = "404"
    [result] = await fetch_models([model_server.pin("gone.bin")], tmp_path, options=options(), sleep=no_sleep)
    assert result.status is FetchStatus.FAILED and "HTTP 404" in (result.error or "")
    assert len(model_server.hits("gone.bin")) == 1


async def test_500_retries_with_backoff_then_gives_up(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.add("down.bin")
    model_server.always["down.bin"] = "500"
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    [result] = await fetch_models([model_server.pin("down.bin")], tmp_path, options=options(attempts=3), sleep=sleep)
    assert result.status is FetchStatus.FAILED and "gave up after 3 attempts" in (result.error or "")
    assert len(model_server.hits("down.bin")) == 3
    assert delays == [1.0, 2.0]


async def test_a_transient_500_is_retried(model_server: ModelServer, tmp_path: Path) -> None:
    data = model_server.add("flaky.bin")
    model_server.faults["flaky.bin"] = ["500"]
    [result] = await fetch_models([model_server.pin("flaky.bin")], tmp_path, options=options(), sleep=no_sleep)
    assert result.status is FetchStatus.DOWNLOADED
    assert (tmp_path / "checkpoints" / "flaky.bin").read_bytes() == data


async def test_wrong_bytes_are_deleted_and_reported(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.add("liar.bin")
    model_server.faults["liar.bin"] = ["wrong"]
    [result] = await fetch_models([model_server.pin("liar.bin")], tmp_path, options=options(), sleep=no_sleep)
    assert result.status is FetchStatus.FAILED
    assert "sha256 mismatch" in (result.error or "") and "deleted" in (result.error or "")
    assert not (tmp_path / "checkpoints" / "liar.bin").exists()
    assert not list(tmp_path.rglob("*.part"))


async def test_present_and_matching_files_are_skipped(model_server: ModelServer, tmp_path: Path) -> None:
    data = model_server.add("have.bin")
    stale = model_server.add("stale.bin")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "have.bin").write_bytes(data)
    (folder / "stale.bin").write_bytes(b"x" * len(stale))  # same size, other bytes: replaced
    results = await fetch_models(
        [model_server.pin("have.bin"), model_server.pin("stale.bin")], tmp_path, options=options()
    )
    assert [r.status for r in results] == [FetchStatus.PRESENT, FetchStatus.DOWNLOADED]
    assert model_server.hits("have.bin") == []
    assert (folder / "stale.bin").read_bytes() == stale


async def test_unverified_models_are_refused_unless_allowed(model_server: ModelServer, tmp_path: Path) -> None:
    data = model_server.add("loose.bin")
    pin = model_server.pin("loose.bin", sha256=None, size=None, unverified="no published digest")
    [refused] = await fetch_models([pin], tmp_path, options=options())
    assert refused.status is FetchStatus.FAILED and "--allow-unverified" in (refused.error or "")
    assert model_server.hits("loose.bin") == []
    [allowed] = await fetch_models([pin], tmp_path, options=options(allow_unverified=True))
    assert allowed.status is FetchStatus.DOWNLOADED
    assert (tmp_path / "checkpoints" / "loose.bin").read_bytes() == data


async def test_tokens_come_from_the_environment(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.add("gated.bin")
    model_server.always["gated.bin"] = "auth:s3cret-token-value"
    pin = model_server.pin("gated.bin", token_env="MY_TOKEN")
    [without] = await fetch_models([pin], tmp_path, options=options())
    assert without.status is FetchStatus.FAILED and "set the token" in (without.error or "")
    [with_token] = await fetch_models([pin], tmp_path, options=options(environ={"MY_TOKEN": "s3cret-token-value"}))
    assert with_token.status is FetchStatus.DOWNLOADED
    assert "s3cret-token-value" not in (without.error or "")


async def test_generated_models_are_made_and_verified(tmp_path: Path) -> None:
    from handlers.image import GENERATORS

    probe = tmp_path / "probe.safetensors"
    GENERATORS["srvgg-compact-x2"](probe)
    digest = hashlib.sha256(probe.read_bytes()).hexdigest()
    good = ModelPin(folder="upscale_models", file="t.safetensors", generator="srvgg-compact-x2", sha256=digest)
    bad = ModelPin(folder="upscale_models", file="u.safetensors", generator="srvgg-compact-x2", sha256="0" * 64)
    url = ModelPin(folder="vae", file="v.bin", url="http://127.0.0.1:9/never", sha256="1" * 64)
    results = await fetch_models([good, bad, url], tmp_path / "models", options=options(generated_only=True))
    assert [r.status for r in results] == [FetchStatus.GENERATED, FetchStatus.FAILED, FetchStatus.SKIPPED]
    assert (tmp_path / "models" / "upscale_models" / "t.safetensors").read_bytes() == probe.read_bytes()
    assert not (tmp_path / "models" / "upscale_models" / "u.safetensors").exists()


def _lock_file(tmp_path: Path, pins: list[ModelPin]) -> Path:
    lock = {
        "comfyui": {"commit": "a125cd84b054a57729b5eecab930ca9408719832"},
        "models": [p.model_dump(mode="json", exclude_none=True) for p in pins],
        "profiles": {"p": {"models": [p.id for p in pins]}},
    }
    path = tmp_path / "lock.json"
    path.write_text(json.dumps(lock))
    return path


async def test_cli_summary_exit_status_and_no_token_in_output(
    model_server: ModelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model_server.add("ok.bin")
    model_server.add("gated.bin")
    model_server.always["gated.bin"] = "auth:tok-123456789"
    model_server.add("bad.bin")
    model_server.always["bad.bin"] = "404"
    pins = [
        model_server.pin("ok.bin"),
        model_server.pin("gated.bin", token_env="RELAY_TEST_TOKEN"),
        model_server.pin("bad.bin"),
    ]
    lock = _lock_file(tmp_path, pins)
    monkeypatch.setenv("RELAY_TEST_TOKEN", "tok-123456789")
    argv = ["models", "fetch", "--lock", str(lock), "--profile", "p", "--dest", str(tmp_path / "m"), "--no-progress"]
    # The CLI runs its own event loop: run it in a thread so this test's loop (serving the files) keeps going.
    import asyncio

    code = await asyncio.to_thread(main, argv)
    out = capsys.readouterr()
    assert code == 1
    assert "downloaded  checkpoints/ok.bin" in out.err and "downloaded  checkpoints/gated.bin" in out.err
    assert "failed  checkpoints/bad.bin" in out.err and "HTTP 404" in out.err
    assert "2 downloaded, 1 failed" in out.err
    assert "tok-123456789" not in out.out + out.err
    model_server.always.pop("bad.bin")
    assert await asyncio.to_thread(main, argv) == 0
    assert "1 downloaded, 2 present" in capsys.readouterr().err


async def test_cli_rejects_an_unknown_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = _lock_file(tmp_path, [])
    code = main(["models", "fetch", "--lock", str(lock), "--profile", "nope", "--dest", str(tmp_path)])
    assert code == 1
    assert "no profile 'nope'" in capsys.readouterr().err
