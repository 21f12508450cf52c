"""``comfy-relay templates list|show|schema`` on the repository library and on a library given by --root or
$RELAY_WORKFLOWS_DIR."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from handlers.cli import _templates


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="comfy-relay")
    _templates.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


@pytest.fixture
def tiny_library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    (root / "image" / "dot").mkdir(parents=True)
    (root / "image" / "dot" / "workflow.json").write_text(
        json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"width": "{{size}}", "height": 8}}})
    )
    (root / "zoe" / "image" / "dot").mkdir(parents=True)
    (root / "zoe" / "image" / "dot" / "workflow.json").write_text(
        json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": "{{size}}"}}})
    )
    (root / "image" / "broken").mkdir()
    (root / "image" / "broken" / "workflow.json").write_text("{not json")
    return root


def test_list_names_templates_and_characters(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["templates", "list"]) == 0
    out = capsys.readouterr().out
    assert "image/sdxl-basic" in out and "video/wan22-i2v" in out and "train/lora-sdxl" in out
    assert "[ava]" in out
    assert out.rstrip().endswith("characters: ava, mira")


def test_list_json_with_root(tiny_library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["templates", "list", "--root", str(tiny_library), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["characters"] == ["zoe"]
    by_name = {t["name"]: t for t in listing["templates"]}
    assert by_name["image/dot"] == {"name": "image/dot", "kind": "image", "characters": ["zoe"], "description": ""}
    assert "is invalid" in by_name["image/broken"]["error"]


def test_environment_names_the_library(
    tiny_library: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELAY_WORKFLOWS_DIR", str(tiny_library))
    assert run(["templates", "list"]) == 0
    out = capsys.readouterr().out
    assert "image/dot" in out and "INVALID" in out and "image/sdxl-basic" not in out


def test_show_prints_params_models_and_custom_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["templates", "show", "image/sdxl-faceid"]) == 0
    out = capsys.readouterr().out
    assert "  prompt: string, required - " in out
    assert "  steps: int, default 30, range 1..100" in out
    assert "models/ipadapter/ip-adapter-faceid-plusv2_sdxl.bin  <- https://huggingface.co/h94/" in out
    assert "https://github.com/cubiq/ComfyUI_IPAdapter_plus @ 9d076a3df0d2763cef5510ec5ab807f6632c39f5" in out


def test_show_json_for_a_character(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["templates", "show", "audio/f5-tts", "--character", "mira", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    params = {p["name"]: p for p in info["params"]}
    assert info["character"] == "mira" and info["kind"] == "audio"
    assert params["voice_sample"] == {
        "name": "voice_sample",
        "type": "audio",
        "required": False,
        "default": "mira_voice.wav",
        "description": "5-15 s of the voice (wav, flac, mp3)",
    }
    assert params["text"]["required"] is True
    assert [c["repo"] for c in info["custom_nodes"]] == ["https://github.com/niknah/ComfyUI-F5-TTS"]


def test_schema_is_the_templates_params_schema(tiny_library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["templates", "schema", "image/dot", "--root", str(tiny_library), "--character", "zoe"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "params of image/dot for zoe"
    assert schema["required"] == ["size"] and schema["additionalProperties"] is False


def test_unknown_or_broken_templates_exit_1(tiny_library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["templates", "show", "image/nope"]) == 1
    err = capsys.readouterr().err
    assert "no template image/nope" in err and "input.template: unknown template 'image/nope'" in err
    assert run(["templates", "schema", "image/broken", "--root", str(tiny_library)]) == 1
    assert "workflow.json: is not valid JSON" in capsys.readouterr().err


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        run(["templates", "show"])
    assert info.value.code == 2


def test_list_reports_a_broken_character_pack(tiny_library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_library / "zoe" / "character.json").write_text(
        json.dumps({"name": "Zoe", "loras": [{"file": "z.safetensors", "url": "ftp://x/z", "sha256": "0" * 64}]})
    )
    assert run(["templates", "list", "--root", str(tiny_library)]) == 0
    out = capsys.readouterr().out
    assert "INVALID character zoe" in out
    assert "character.loras[0].url: must be an https:// URL" in out and "character.loras[0].size" in out
    assert run(["templates", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["character_errors"] == {}  # the repository's packs are valid
