"""The worker image's tools: the lock (pins as data), the model fetcher, the custom node installer, the locally
generated test models, and the offline build and smoke test (``comfy-relay image|models``).

The fetcher, the installer and the lock reader need only pydantic and httpx: they run inside an image build before
comfy-relay is installed (``python -m handlers.image``). Generating the lock reads the workflow library. Names are
imported on first use, so registering the ``comfy-relay`` sub-commands stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlers.image._fetch import (
        FetchOptions,
        FetchProgress,
        FetchResult,
        FetchStatus,
        fetch_models,
        sha256_file,
    )
    from handlers.image._lock import (
        COMFYUI_COMMIT,
        COMFYUI_REPO,
        CustomNodePin,
        ImageLock,
        LockError,
        ModelPin,
        ProfileLock,
        load_lock,
    )
    from handlers.image._nodes import COMMIT_MARKER, NodeInstallError, install_nodes
    from handlers.image._synthetic import GENERATORS

__all__ = [
    "COMFYUI_COMMIT",
    "COMFYUI_REPO",
    "COMMIT_MARKER",
    "GENERATORS",
    "CustomNodePin",
    "FetchOptions",
    "FetchProgress",
    "FetchResult",
    "FetchStatus",
    "ImageLock",
    "LockError",
    "ModelPin",
    "NodeInstallError",
    "ProfileLock",
    "fetch_models",
    "install_nodes",
    "load_lock",
    "sha256_file",
]

_HOME = {
    **dict.fromkeys(
        ["FetchOptions", "FetchProgress", "FetchResult", "FetchStatus", "fetch_models", "sha256_file"], "_fetch"
    ),
    **dict.fromkeys(
        [
            "COMFYUI_COMMIT",
            "COMFYUI_REPO",
            "CustomNodePin",
            "ImageLock",
            "LockError",
            "ModelPin",
            "ProfileLock",
            "load_lock",
        ],
        "_lock",
    ),
    **dict.fromkeys(["COMMIT_MARKER", "NodeInstallError", "install_nodes"], "_nodes"),
    "GENERATORS": "_synthetic",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'handlers.image' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"handlers.image.{home}"), name)
    globals()[name] = value
    return value
