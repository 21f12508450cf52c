"""Where output nodes write, named exactly as ComfyUI names files (``folder_paths.get_save_image_path``).

``probe/basic`` saves ``<output>/probe/basic_00001_.png``; the counter continues after the highest existing
``basic_NNNNN_*`` file whatever its extension (transcript 03: ``anim_00001_.webp`` then ``anim_00002_.png``).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SavePath", "file_entry", "save_path", "temp_prefix"]

_TEMP_LETTERS = "abcdefghijklmnopqrstupvxyz"  # ComfyUI's own alphabet: "v" twice, no "w"


@dataclass(frozen=True)
class SavePath:
    """Where to write: ``folder / f"{filename}_{counter:05}_.{ext}"``, reported with ``subfolder``."""

    folder: Path
    filename: str
    counter: int
    subfolder: str

    def name(self, index: int, ext: str, batch_number: int = 0) -> str:
        """The file name of the ``index``-th file written from this path (``%batch_num%`` is replaced)."""
        base = self.filename.replace("%batch_num%", str(batch_number))
        return f"{base}_{self.counter + index:05}_.{ext}"


def _expand(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    replacements = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": f"{now.tm_mon:02}",
        "%day%": f"{now.tm_mday:02}",
        "%hour%": f"{now.tm_hour:02}",
        "%minute%": f"{now.tm_min:02}",
        "%second%": f"{now.tm_sec:02}",
    }
    for key, value in replacements.items():
        prefix = prefix.replace(key, value)
    return prefix


def _counter_of(name: str, filename: str) -> int | None:
    """The counter in ``<filename>_<digits>_...``, or None if ``name`` is not one of this prefix's files."""
    head = name[: len(filename) + 1]
    if os.path.normcase(head[:-1]) != os.path.normcase(filename) or head[-1:] != "_":
        return None
    try:
        return int(name[len(filename) + 1 :].split("_", maxsplit=1)[0])
    except ValueError:
        return 0


def save_path(prefix: str, root: Path, width: int = 0, height: int = 0) -> SavePath:
    """Resolve ``filename_prefix`` under ``root``, creating the subfolder; refuse a prefix that escapes ``root``.

    The exception and its message are ComfyUI's (a bare ``Exception``), so ``execution_error`` looks the same.
    """
    if "%" in prefix:
        prefix = _expand(prefix, width, height)
    normal = os.path.normpath(prefix)
    subfolder = os.path.dirname(normal)
    filename = os.path.basename(normal)
    output_dir = os.path.abspath(root)
    folder = os.path.abspath(os.path.join(output_dir, subfolder))
    common = os.path.commonpath((output_dir, folder))
    if common != output_dir:
        message = (
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {folder}"
            f"\n         output_dir: {output_dir}"
            f"\n         commonpath: {common}"
        )
        # A bare Exception, as ComfyUI raises it: the executor reports exception_type "Exception".
        raise Exception(message)
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    counters = [c for c in (_counter_of(entry.name, filename) for entry in path.iterdir()) if c is not None]
    return SavePath(path, filename, max(counters, default=0) + 1, subfolder)


def temp_prefix(rng: random.Random | None = None) -> str:
    """PreviewImage's prefix: ``ComfyUI_temp_`` plus five random letters, new for every node instance."""
    pick = rng or random.Random()  # noqa: S311 - a file name, not a secret
    return "ComfyUI_temp_" + "".join(pick.choice(_TEMP_LETTERS) for _ in range(5))


def file_entry(filename: str, subfolder: str, kind: str) -> dict[str, Any]:
    """One entry of a ui list: ``{"filename", "subfolder", "type"}``."""
    return {"filename": filename, "subfolder": subfolder, "type": kind}
