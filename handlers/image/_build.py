"""``comfy-relay image build --offline``: the worker image built with buildah, without a Docker daemon, Docker Hub or
GitHub. The base is a local Debian made with debootstrap (reused when it exists), ComfyUI's source is a local folder,
and Python packages come from PyPI (or a local wheel folder). The build context is a temporary folder holding only
what the Dockerfile copies, so nothing else of the checkout (a virtualenv, secrets) can reach a layer; the CA bundle
and the wheel folder are build-time mounts, never copied.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["BASE_TAG", "BuildError", "BuildOptions", "build_image", "buildah_command", "ensure_base"]

BASE_TAG: Final = "localhost/comfy-relay-base:bookworm"
_REPO: Final = Path(__file__).resolve().parents[2]
_DEBIAN_MIRROR: Final = "http://deb.debian.org/debian"
#: What the Dockerfile copies from the context; everything else stays out of it.
_CONTEXT_FILES: Final = ("pyproject.toml", "README.md", "handlers", "workflows", "worker_image")


class BuildError(RuntimeError):
    """The build could not run or failed; the message says which step."""


@dataclass(frozen=True, slots=True)
class BuildOptions:
    comfyui_src: Path
    base_image: str | None = None
    profile: str = "test"
    tag: str = "localhost/comfy-relay-worker:test"
    torch_packages: str = "torch==2.14.1 torchvision==0.29.1"
    wheels: Path | None = None
    ca_bundle: Path | None = Path("/etc/ssl/certs/ca-certificates.crt")
    bake_models: bool = False


def _need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise BuildError(f"{tool} is not installed (Debian: apt-get install buildah debootstrap)")
    return found


def _run(argv: Sequence[str], *, step: str, cwd: Path | None = None) -> None:
    print(f"+ {' '.join(argv)}", file=sys.stderr, flush=True)
    result = subprocess.run(list(argv), cwd=cwd, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BuildError(f"{step} failed (exit status {result.returncode})")


def _image_exists(tag: str) -> bool:
    probe = subprocess.run(  # noqa: S603
        [_need("buildah"), "inspect", "--type", "image", tag], capture_output=True, check=False
    )
    return probe.returncode == 0


def ensure_base(tag: str = BASE_TAG, mirror: str = _DEBIAN_MIRROR) -> str:
    """A minimal Debian bookworm image under ``tag``, made with debootstrap unless it exists already."""
    if _image_exists(tag):
        print(f"base image {tag}: reusing it", file=sys.stderr)
        return tag
    _need("debootstrap")
    with tempfile.TemporaryDirectory(prefix="comfy-relay-base-") as tmp:
        root = Path(tmp) / "rootfs"
        _run(["debootstrap", "--variant=minbase", "bookworm", str(root), mirror], step="debootstrap")
        _run(["tar", "-C", str(root), "-cf", str(Path(tmp) / "rootfs.tar"), "."], step="packing the base")
        shutil.rmtree(root)
        (Path(tmp) / "Dockerfile").write_text("FROM scratch\nADD rootfs.tar /\n", encoding="utf-8")
        _run([_need("buildah"), "bud", "--isolation", "chroot", "-t", tag, tmp], step="importing the base")
    return tag


def _check_comfyui(src: Path) -> None:
    for needed in ("main.py", "requirements.txt", "comfyui_version.py"):
        if not (src / needed).is_file():
            raise BuildError(f"--comfyui-src {src} is not a ComfyUI source folder (no {needed})")


def buildah_command(options: BuildOptions, base: str, context: Path) -> list[str]:
    """The ``buildah bud`` invocation (pure: tests read it)."""
    argv = [
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--layers",
        "-f",
        str(context / "worker_image" / "Dockerfile"),
        "-t",
        options.tag,
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        "COMFYUI_SOURCE=local",
        "--build-arg",
        "COMFYUI_LOCAL_DIR=comfyui-src",
        "--build-arg",
        f"PROFILE={options.profile}",
        "--build-arg",
        f"TORCH_PACKAGES={options.torch_packages}",
        "--build-arg",
        f"BAKE_MODELS={'true' if options.bake_models else 'false'}",
    ]
    if options.wheels is not None:
        argv += ["-v", f"{options.wheels.resolve()}:/wheels:ro", "--build-arg", "PIP_FIND_LINKS=/wheels"]
    if options.ca_bundle is not None:
        argv += ["-v", f"{options.ca_bundle.resolve()}:/host-ca.crt:ro", "--build-arg", "PIP_CERT=/host-ca.crt"]
    return [*argv, str(context)]


def build_image(options: BuildOptions) -> float:
    """Build; returns the seconds the build took (printed too)."""
    _check_comfyui(options.comfyui_src)
    _need("buildah")
    if options.wheels is not None and not options.wheels.is_dir():
        raise BuildError(f"--wheels {options.wheels} is not a folder")
    if options.ca_bundle is not None and not options.ca_bundle.is_file():
        raise BuildError(f"--ca-bundle {options.ca_bundle} is not a file")
    base = options.base_image or ensure_base()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="comfy-relay-context-") as tmp:
        context = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".comfyui-src")
        for name in _CONTEXT_FILES:
            source = _REPO / name
            if source.is_dir():
                shutil.copytree(source, context / name, ignore=ignore)
            else:
                shutil.copy2(source, context / name)
        shutil.copytree(options.comfyui_src, context / "comfyui-src", ignore=shutil.ignore_patterns(".git"))
        argv = buildah_command(options, base, context)
        argv[0] = _need("buildah")
        _run(argv, step="buildah bud")
    took = time.monotonic() - started
    print(f"built {options.tag} in {took:.0f} s", file=sys.stderr)
    return took
