"""The workflow library on disk: where it is, its characters, and the custom-node schemas recorded beside it.

``<root>/_catalogue/custom_nodes.json`` holds, per custom node pack (repository + pinned commit), the node classes
the library uses in ``/object_info``'s shape. Merged into ComfyUI's own ``/object_info`` they let the templates that
use those packs validate where the packs are not installed (dispatch, CI).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from handlers.workflow._templates import CHARACTER_FILE, WORKFLOW_FILE

__all__ = [
    "CUSTOM_NODES_FILE",
    "WORKFLOWS_ENV",
    "LibraryMissingError",
    "custom_node_classes",
    "default_workflows_dir",
    "list_characters",
    "require_library",
    "with_custom_nodes",
]

#: Environment variable naming the library folder (default: the repository's ``workflows/``).
WORKFLOWS_ENV: Final = "RELAY_WORKFLOWS_DIR"
CUSTOM_NODES_FILE: Final = Path("_catalogue") / "custom_nodes.json"
#: Where an install keeps the library: ``workflows/`` beside ``handlers/`` (a checkout, or site-packages: the wheel
#: carries it).
BUNDLED_WORKFLOWS: Final = Path(__file__).resolve().parents[2] / "workflows"


def default_workflows_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$RELAY_WORKFLOWS_DIR`` when set, else the ``workflows/`` folder beside the ``handlers`` package."""
    env = os.environ if environ is None else environ
    configured = env.get(WORKFLOWS_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return BUNDLED_WORKFLOWS


class LibraryMissingError(ValueError):
    """The workflow library folder does not exist: a broken install or a wrong ``RELAY_WORKFLOWS_DIR``."""


def require_library(environ: Mapping[str, str] | None = None, root: Path | None = None) -> Path:
    """The library folder (``root``, else :func:`default_workflows_dir`), checked to exist. Every component calls
    this once at start-up, so a wheel or image without ``workflows/`` fails its first boot with this message instead of
    serving an empty template list."""
    env = os.environ if environ is None else environ
    path = root if root is not None else default_workflows_dir(env)
    if path.is_dir():
        return path
    if root is None and env.get(WORKFLOWS_ENV, "").strip():
        raise LibraryMissingError(f"{WORKFLOWS_ENV}={env[WORKFLOWS_ENV]!r}: no workflow library at {path}")
    if root is None:
        raise LibraryMissingError(
            f"the bundled workflow library is missing (expected {path}): reinstall comfy-relay from a wheel built "
            f"with workflows/, or set {WORKFLOWS_ENV} to a library folder"
        )
    raise LibraryMissingError(f"no workflow library at {path}")


def list_characters(root: Path) -> list[str]:
    """Character folders: top-level folders with a ``character.json``, or holding ``<kind>/<name>/`` templates
    rather than being a kind themselves (the rule :func:`list_templates` uses). Folders starting with ``_`` hold
    library data, never characters."""
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        subfolders = [sub for sub in folder.iterdir() if sub.is_dir()]
        if (folder / CHARACTER_FILE).is_file() or (
            subfolders and not any((sub / WORKFLOW_FILE).is_file() for sub in subfolders)
        ):
            found.append(folder.name)
    return found


def custom_node_classes(root: Path) -> dict[str, Any]:
    """Every recorded custom node class by name (``{}`` when the library records none). ``ValueError`` when the
    file is not the expected shape or two packs record the same class."""
    path = root / CUSTOM_NODES_FILE
    if not path.is_file():
        return {}
    document = json.loads(path.read_text(encoding="utf-8"))
    packs = document.get("packs") if isinstance(document, Mapping) else None
    if not isinstance(packs, list):
        raise ValueError(f"{path}: expected an object with a 'packs' list")
    classes: dict[str, Any] = {}
    for pack in packs:
        nodes = pack.get("nodes") if isinstance(pack, Mapping) else None
        if not isinstance(nodes, Mapping):
            raise ValueError(f"{path}: every pack needs a 'nodes' object")
        for name, info in nodes.items():
            if name in classes:
                raise ValueError(f"{path}: node class {name!r} is recorded twice")
            classes[name] = info
    return classes


def with_custom_nodes(object_info: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """``object_info`` plus the library's recorded custom node classes; ComfyUI's own entries win (a live
    ``/object_info`` that has the pack installed is the better source)."""
    return {**custom_node_classes(root), **object_info}
