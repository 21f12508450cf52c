"""``filename_prefix``: where a save node writes, relative to ComfyUI's output folder. A job's files must stay in
the job's own folder, so a prefix is a relative path of plain segments: ``..`` is refused up front (it would climb
out of ``output/<job>/`` - files that are never uploaded or cleaned up), and empty, ``.`` and leading separators are
normalised away before the worker puts the prefix under the job's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from handlers.contract import Problem, format_path
from handlers.workflow._training import MODEL_SAVERS

__all__ = ["FILENAME_PREFIX", "filename_prefix_problems", "job_filename_prefix", "prefix_input"]

FILENAME_PREFIX: Final = "filename_prefix"
_SEPARATORS: Final = re.compile(r"[/\\]+")
#: ComfyUI's own default prefix, for one that normalises to nothing.
_DEFAULT: Final = "ComfyUI"


def prefix_input(node: Mapping[str, Any]) -> str:
    """The input that holds a node's output prefix: ``filename_prefix``, or a model saver's own (``prefix``)."""
    return MODEL_SAVERS.get(str(node.get("class_type")), FILENAME_PREFIX)


def _segments(prefix: str) -> list[str]:
    parts = [part for part in _SEPARATORS.split(prefix) if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("must not contain '..' segments: outputs stay inside the job's folder")
    if any("\x00" in part for part in parts):
        raise ValueError("must not contain NUL characters")
    return parts


def filename_prefix_problems(graph: Mapping[str, Any]) -> list[Problem]:
    """Every save node input whose prefix could leave the job's folder."""
    problems: list[Problem] = []
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        name = prefix_input(node) if isinstance(inputs, Mapping) else FILENAME_PREFIX
        value = inputs.get(name) if isinstance(inputs, Mapping) else None
        if isinstance(value, str):
            try:
                _segments(value)
            except ValueError as exc:
                path = format_path("graph", [str(node_id), "inputs", name])
                problems.append(Problem(path=path, message=str(exc)))
    return problems


def job_filename_prefix(prefix: str, *folders: str) -> str:
    """``prefix`` under ``folders`` (the job id, the attempt), normalised. Raises ValueError for a prefix that
    :func:`filename_prefix_problems` refuses."""
    return "/".join([*folders, *(_segments(prefix) or [_DEFAULT])])
