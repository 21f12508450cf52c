"""The Lambda deployment artifact: the dispatch code and the base install's dependencies (boto3, httpx, pydantic and
what they need), nothing else: no CLI, no emulators, no worker, no pillow, no runpod SDK.

Two ways to get the dependencies:

- ``env`` (default): copy the installed distributions of this environment (files from each one's RECORD). Offline
  and exactly what the tests ran against; valid when this interpreter matches the Lambda runtime (CPython 3.11 on
  Linux x86_64, :data:`~handlers.deploy._template.LAMBDA_RUNTIME`).
- ``pip``: ``pip install --target`` for the Lambda platform (manylinux x86_64, CPython 3.11) from the package
  index, on any machine.

The zip is deterministic (sorted entries, fixed timestamps), so its sha256 names it and an unchanged build uploads
and deploys nothing.
"""

from __future__ import annotations

import hashlib
import platform
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final, Literal

from handlers.deploy._template import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME

__all__ = ["DISPATCH_PACKAGES", "FORBIDDEN_MODULES", "Artifact", "PackageError", "build_artifact", "requirements"]

PROJECT: Final = "comfy-relay"
#: The parts of ``handlers`` the Lambdas import (dispatch pulls in common, contract, workflow and the URL guard).
DISPATCH_PACKAGES: Final = ("common", "contract", "dispatch", "outbound", "workflow")
#: Top-level modules that must never be in the artifact (or loaded by a handler).
FORBIDDEN_MODULES: Final = ("runpod", "PIL", "aiohttp", "moto", "websockets", "rich")
_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)
_SKIP: Final = re.compile(r"(^|/)__pycache__(/|$)|\.pyc$")


class PackageError(Exception):
    """The artifact cannot be built as asked."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size_bytes: int
    unpacked_bytes: int
    files: int

    @property
    def key(self) -> str:
        """Content-addressed S3 key: a new key exactly when the code changed."""
        return f"comfy-relay/lambda/{self.sha256}.zip"


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise PackageError(f"cannot read requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _applies(requirement: str) -> bool:
    """Base requirements only: no extras; other markers are evaluated for this interpreter."""
    _, _, marker = requirement.partition(";")
    if not marker.strip():
        return True
    if "extra" in marker:
        return False
    from packaging.markers import Marker  # noqa: PLC0415  (pip's own dependency; build time only)

    return Marker(marker).evaluate()


def requirements() -> list[str]:
    """The project's base requirements, as declared (no extras)."""
    return [r for r in metadata.requires(PROJECT) or [] if _applies(r)]


def _closure() -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    pending = [_name(r) for r in requirements()]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise PackageError(f"{name} is required but not installed here; use --source pip") from exc
        seen[name] = dist
        pending.extend(_name(r) for r in dist.requires or [] if _applies(r))
    return sorted(seen.values(), key=lambda d: _name(d.metadata["Name"]))


def _copy_environment(target: Path) -> None:
    if (
        sys.platform != "linux"
        or platform.machine() != LAMBDA_ARCHITECTURE
        or (f"python{sys.version_info.major}.{sys.version_info.minor}") != LAMBDA_RUNTIME
    ):
        raise PackageError(
            f"this interpreter ({sys.platform} {platform.machine()}, Python {sys.version_info.major}."
            f"{sys.version_info.minor}) does not match the Lambda runtime ({LAMBDA_RUNTIME} {LAMBDA_ARCHITECTURE}): "
            "use --source pip"
        )
    for dist in _closure():
        for file in dist.files or []:
            relative = str(file)
            if relative.startswith("..") or _SKIP.search(relative) or relative.endswith(".dist-info/RECORD"):
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)


def _pip_install(target: Path) -> None:
    python_version = LAMBDA_RUNTIME.removeprefix("python")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--platform",
        f"manylinux2014_{LAMBDA_ARCHITECTURE}",
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        *requirements(),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True)  # noqa: S603
    if done.returncode != 0:
        raise PackageError(f"pip install failed:\n{done.stderr.strip()}")


def _copy_code(target: Path) -> None:
    import handlers  # noqa: PLC0415

    package = Path(handlers.__file__).resolve().parent
    shutil.copyfile(package / "__init__.py", target / "handlers" / "__init__.py")
    for name in DISPATCH_PACKAGES:
        for source in sorted((package / name).rglob("*")):
            relative = source.relative_to(package.parent)
            if source.is_file() and not _SKIP.search(str(relative)):
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)
    # Dispatch validates named templates against the library beside the package (``_runtime._BUNDLED_WORKFLOWS``).
    workflows = package.parent / "workflows"
    if workflows.is_dir():
        shutil.copytree(workflows, target / "workflows", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _compile(tree: Path) -> None:
    """Ship bytecode: /var/task is read-only, so without it every cold start compiles every module again.
    Unchecked-hash pycs are deterministic (no timestamps) and valid whatever the files' mtimes."""
    if f"python{sys.version_info.major}.{sys.version_info.minor}" != LAMBDA_RUNTIME:
        return  # bytecode of another Python version would be ignored at best
    import compileall  # noqa: PLC0415

    compileall.compile_dir(
        tree, quiet=1, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, ddir="/var/task"
    )


def _zip(tree: Path, out: Path) -> tuple[int, int]:
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    unpacked = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unpacked += len(data)
            archive.writestr(info, data, compresslevel=9)
    return len(files), unpacked


def build_artifact(out_dir: Path, *, source: Literal["env", "pip"] = "env", keep_tree: Path | None = None) -> Artifact:
    """Build the zip into ``out_dir`` (named by its sha256). ``keep_tree``: also leave the unpacked tree there."""
    with tempfile.TemporaryDirectory(prefix="comfy-relay-lambda-") as scratch:
        tree = Path(scratch) / "tree"
        (tree / "handlers").mkdir(parents=True)
        if source == "env":
            _copy_environment(tree)
        else:
            _pip_install(tree)
        for name in FORBIDDEN_MODULES:
            if (tree / name).exists() or (tree / f"{name}.py").exists():
                raise PackageError(f"{name} ended up in the artifact: the base install must not depend on it")
        _copy_code(tree)
        _compile(tree)
        staging = Path(scratch) / "lambda.zip"
        count, unpacked = _zip(tree, staging)
        digest = hashlib.sha256(staging.read_bytes()).hexdigest()
        final = out_dir / f"comfy-relay-lambda-{digest[:16]}.zip"
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(staging, final)
        if keep_tree is not None:
            if keep_tree.exists():
                shutil.rmtree(keep_tree)
            shutil.copytree(tree, keep_tree)
    return Artifact(path=final, sha256=digest, size_bytes=final.stat().st_size, unpacked_bytes=unpacked, files=count)
