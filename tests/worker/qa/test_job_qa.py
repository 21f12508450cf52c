"""JobQaRun without a server: checks start as outputs are stored, previews are published beside their source, and a
check that breaks is reported as skipped instead of failing the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handlers.contract import OutputItem, OutputKind, OutputRole, PreviewOptions, QaOptions, QaVerdict
from handlers.local.comfyui._nodes._render import picture
from handlers.worker._outputs import ComfyDirs
from handlers.worker.qa import JobQaRun
from handlers.worker.qa import _job as job_module


def _run(tmp_path: Path, published: list[tuple[str, OutputRole]]) -> tuple[JobQaRun, OutputItem]:
    path = tmp_path / "a.png"
    picture(1, 64, 64).save(path)
    item = OutputItem(node_id="9", kind=OutputKind.IMAGE, filename="a.png", sha256="ab" * 32)

    async def publish(source: OutputItem, made: Path, role: OutputRole) -> OutputItem:
        published.append((made.name, role))
        return OutputItem(node_id=source.node_id, kind=OutputKind.IMAGE, role=role, derived_from=source.sha256)

    graph = {"9": {"class_type": "SaveImage", "inputs": {}}}
    run = JobQaRun(
        QaOptions(),
        PreviewOptions(),
        graph,
        paths={item.sha256 or "": path},
        publish=publish,
        announce=lambda _item: None,
        work_dir=tmp_path,
    )
    return run, item


async def test_checks_and_previews_of_a_stored_output(tmp_path: Path) -> None:
    published: list[tuple[str, OutputRole]] = []
    run, item = _run(tmp_path, published)
    await run.stored([item])
    assert published == [("a.thumbnail.webp", OutputRole.THUMBNAIL)]
    (checked,) = await run.verdicts([item])
    assert checked.qa is not None and checked.qa.verdict is QaVerdict.PASS


async def test_a_check_that_breaks_is_skipped_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(job_module, "check_file", broken)
    run, item = _run(tmp_path, [])
    await run.stored([item])
    (checked,) = await run.verdicts([item])
    assert checked.qa is not None and checked.qa.verdict is QaVerdict.SKIPPED
    assert "ZeroDivisionError" in (checked.qa.checks[0].message or "")


async def test_checks_started_ahead_of_the_upload_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = job_module.check_file

    def counting(path: Path, *args: Any) -> Any:
        calls.append(path)
        return real(path, *args)

    monkeypatch.setattr(job_module, "check_file", counting)
    published: list[tuple[str, OutputRole]] = []
    run, item = _run(tmp_path, published)
    dirs = ComfyDirs(output=tmp_path, temp=tmp_path / "temp", input=tmp_path / "input")
    run.ahead("9", {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}, dirs, include_temp=False)
    await run.stored([item])
    (checked,) = await run.verdicts([item])
    assert calls == [(tmp_path / "a.png").resolve()] and published == [("a.thumbnail.webp", OutputRole.THUMBNAIL)]
    assert checked.qa is not None and checked.qa.verdict is QaVerdict.PASS
