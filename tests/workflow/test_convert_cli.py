"""``comfy-relay convert``: file or live ComfyUI catalogue in, API graph JSON out, one clear line on failure."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from handlers.cli import _convert
from handlers.local._serving import ServerThread
from tests.workflow.test_catalogue import CATALOGUE

# handlers/local/_serving.py passes shutdown_timeout to SockSite, which aiohttp 3.14 deprecates (not ours to fix).
SERVING = pytest.mark.filterwarnings("ignore:shutdown_timeout should be set on BaseRunner:DeprecationWarning")


def run(argv: Sequence[str]) -> int:
    """The sub-command as the ``comfy-relay`` parser will run it once it is registered there."""
    parser = argparse.ArgumentParser(prog="comfy-relay")
    _convert.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


UI_WORKFLOW: dict[str, Any] = {
    "last_node_id": 2,
    "last_link_id": 1,
    "nodes": [
        {"id": 1, "type": "EmptyImage", "mode": 0, "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
         "widgets_values": [64, 32, 1, 0]},
        {"id": 2, "type": "SaveImage", "mode": 0, "title": "Out",
         "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "widgets_values": ["probe"]},
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    "version": 0.4,
}  # fmt: skip
EXPECTED = {
    "1": {"inputs": {"width": 64, "height": 32, "batch_size": 1, "color": 0}, "class_type": "EmptyImage",
          "_meta": {"title": "EmptyImage"}},
    "2": {"inputs": {"filename_prefix": "probe", "images": ["1", 0]}, "class_type": "SaveImage",
          "_meta": {"title": "Out"}},
}  # fmt: skip


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"ui": tmp_path / "ui.json", "info": tmp_path / "object_info.json", "api": tmp_path / "api.json"}
    paths["ui"].write_text(json.dumps(UI_WORKFLOW))
    paths["info"].write_text(json.dumps(CATALOGUE))
    paths["api"].write_text(json.dumps(EXPECTED))
    return paths


def test_convert_with_an_object_info_file(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["convert", str(files["ui"]), "--object-info", str(files["info"])]) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED


@SERVING
def test_convert_with_a_live_comfyui(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    async def object_info(_: web.Request) -> web.Response:
        return web.json_response(CATALOGUE)

    async def factory() -> web.Application:
        app = web.Application()
        app.router.add_get("/object_info", object_info)
        return app

    with ServerThread(factory) as server:
        assert run(["convert", str(files["ui"]), "--comfyui", server.url + "/"]) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED


def test_unknown_node_type_fails_with_one_line(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    files["info"].write_text(json.dumps({k: v for k, v in CATALOGUE.items() if k != "SaveImage"}))
    assert run(["convert", str(files["ui"]), "--object-info", str(files["info"])]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "comfy-relay convert: node 2 (SaveImage, 'Out'): node type 'SaveImage' is not in the /object_info catalogue\n"
    )


def test_usage_failures(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["convert", str(files["ui"])]) == 1
    assert "--object-info FILE or --comfyui URL" in capsys.readouterr().err
    assert run(["convert", str(files["api"]), "--object-info", str(files["info"])]) == 1
    assert "is not a UI workflow" in capsys.readouterr().err
    assert run(["convert", str(files["ui"]) + ".missing", "--object-info", str(files["info"])]) == 1
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        run(["convert", str(files["ui"]), "--object-info", "a", "--comfyui", "b"])
    assert caught.value.code == 2


@SERVING
def test_unreachable_comfyui_is_one_line(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    async def empty() -> web.Application:
        return web.Application()  # serves nothing: /object_info is a 404

    with ServerThread(empty) as server:
        assert run(["convert", str(files["ui"]), "--comfyui", server.url]) == 1
    assert "cannot fetch" in capsys.readouterr().err
