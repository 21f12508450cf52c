"""Custom node installer: each locked pack at its exact commit, then its Python requirements.

A pack goes to ``<dest>/<name>`` from ``git`` (any remote git accepts: https, a local path in tests). The commit is
fetched by id (shallow) where the remote allows it, else from a full fetch; a commit the remote does not have is a
loud failure, never a silent checkout of another one. ``.git`` is removed (image layers stay small) and the commit is
recorded in ``.comfy-relay-commit``, so a second run skips packs already at their commit.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from handlers.image._lock import CustomNodePin

__all__ = ["COMMIT_MARKER", "NodeInstallError", "install_nodes"]

logger = logging.getLogger("handlers.image.nodes")

COMMIT_MARKER: Final = ".comfy-relay-commit"


class NodeInstallError(RuntimeError):
    """A pack could not be installed at its locked commit (missing commit, git or pip failure)."""


def _run(argv: Sequence[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603


def _git(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(["git", "-C", str(checkout), "-c", "advice.detachedHead=false", *args])


def _checkout(node: CustomNodePin, target: Path) -> None:
    staging = target.with_name(f".{target.name}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if (init := _git(staging, "init", "-q")).returncode != 0:
        raise NodeInstallError(f"{node.name}: git init failed: {init.stderr.strip()}")
    shallow = _git(staging, "fetch", "-q", "--depth", "1", node.repo, node.commit)
    if shallow.returncode != 0:
        # Remotes that refuse fetching by commit id: fetch everything, then look for the commit.
        full = _git(
            staging, "fetch", "-q", node.repo, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"
        )
        if full.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise NodeInstallError(
                f"{node.name}: cannot fetch {node.repo}: {full.stderr.strip() or shallow.stderr.strip()}"
            )
    checkout = _git(staging, "checkout", "-q", "--detach", node.commit)
    head = _git(staging, "rev-parse", "HEAD").stdout.strip()
    if checkout.returncode != 0 or head != node.commit:
        shutil.rmtree(staging, ignore_errors=True)
        raise NodeInstallError(f"{node.name}: commit {node.commit} is not in {node.repo}")
    if (staging / ".gitmodules").is_file():
        # Packs that vendor their model code as submodules (ComfyUI-F5-TTS): pinned by the pack's own commit.
        sub = _git(staging, "-c", "protocol.file.allow=always", "submodule", "update", "--init", "--recursive")
        if sub.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise NodeInstallError(f"{node.name}: its git submodules failed: {sub.stderr.strip()}")
    for git_dir in [staging / ".git", *staging.rglob(".git")]:
        if git_dir.is_dir():
            shutil.rmtree(git_dir, ignore_errors=True)
        else:
            git_dir.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _requirements(node: CustomNodePin, target: Path, pip: Sequence[str], constraint: Path | None) -> None:
    args: list[str] = []
    if (target / "requirements.txt").is_file():
        args += ["-r", str(target / "requirements.txt")]
    args += list(node.requirements)
    if not args:
        return
    if constraint is not None:
        args = ["-c", str(constraint), *args]
    result = _run([*pip, "install", *args])
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise NodeInstallError(f"{node.name}: installing its requirements failed:\n{tail}")


def install_nodes(
    nodes: Sequence[CustomNodePin],
    dest: Path,
    *,
    pip: Sequence[str] = (sys.executable, "-m", "pip"),
    constraint: Path | None = None,
) -> list[str]:
    """Install every pack (in order); returns the names installed (packs already at their commit are skipped).
    ``constraint``: a pip constraints file (keeps torch as the image installed it)."""
    dest.mkdir(parents=True, exist_ok=True)
    installed = []
    for node in nodes:
        target = dest / node.name
        marker = target / COMMIT_MARKER
        if marker.is_file() and marker.read_text(encoding="utf-8").strip() == node.commit:
            logger.info("custom node %s already at %s", node.name, node.commit[:12])
            continue
        logger.info("installing custom node %s at %s from %s", node.name, node.commit[:12], node.repo)
        _checkout(node, target)
        _requirements(node, target, pip, constraint)
        marker.write_text(node.commit + "\n", encoding="utf-8")  # last: a failed install is retried next run
        installed.append(node.name)
    return installed
