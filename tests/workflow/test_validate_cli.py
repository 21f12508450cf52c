"""``comfy-relay validate``: exit 0 when valid, 1 with a readable listing (or JSON) when not."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from handlers.cli import _validate
from tests.workflow.test_catalogue import CATALOGUE
from tests.workflow.test_convert_cli import EXPECTED, UI_WORKFLOW


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="comfy-relay")
    _validate.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


@pytest.fixture
def info(tmp_path: Path) -> Path:
    path = tmp_path / "object_info.json"
    path.write_text(json.dumps(CATALOGUE))
    return path


def test_valid_graph_exits_0(tmp_path: Path, info: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = tmp_path / "api.json"
    graph.write_text(json.dumps(EXPECTED))
    assert run(["validate", str(graph), "--object-info", str(info)]) == 0
    assert capsys.readouterr().out == f"{graph}: valid (0 error(s), 0 warning(s))\n"


def test_ui_workflow_is_converted_first(tmp_path: Path, info: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workflow = tmp_path / "ui.json"
    workflow.write_text(json.dumps(UI_WORKFLOW))
    assert run(["validate", str(workflow), "--object-info", str(info)]) == 0
    assert "valid (0 error(s)" in capsys.readouterr().out


def test_invalid_graph_exits_1_with_a_listing(tmp_path: Path, info: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = json.loads(json.dumps(EXPECTED))
    bad["1"]["inputs"]["width"] = 99999
    bad["1"]["inputs"]["bogus"] = 1
    graph = tmp_path / "api.json"
    graph.write_text(json.dumps(bad))
    assert run(["validate", str(graph), "--object-info", str(info)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "error: node 1 (EmptyImage) input 'width': value_bigger_than_max: Value 99999 bigger than max of 16384: width",
        "warning: node 1 (EmptyImage) input 'bogus': unknown_input: Input is not declared by the node class; "
        "ComfyUI ignores it: bogus",
        f"{graph}: invalid (1 error(s), 1 warning(s))",
    ]


def test_json_output_carries_comfyuis_body(tmp_path: Path, info: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = json.loads(json.dumps(EXPECTED))
    del bad["1"]["inputs"]["height"]
    graph = tmp_path / "api.json"
    graph.write_text(json.dumps(bad))
    assert run(["validate", str(graph), "--object-info", str(info), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is False
    assert out["issues"][0]["type"] == "required_input_missing" and out["issues"][0]["node_id"] == "1"
    assert out["comfyui_body"]["node_errors"]["1"]["errors"][0]["details"] == "height"


def test_unreadable_input_exits_1(tmp_path: Path, info: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert run(["validate", str(broken), "--object-info", str(info)]) == 1
    assert "is not JSON" in capsys.readouterr().err
