"""handlers.image's public surface (the image tools), pinned."""

from __future__ import annotations

from handlers import image

EXPECTED = [
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


def test_public_names() -> None:
    assert image.__all__ == EXPECTED
    assert all(getattr(image, name) is not None for name in EXPECTED)


def test_registration_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, handlers.cli; handlers.cli.build_parser();"
        "heavy = [m for m in ('httpx', 'pydantic', 'boto3', 'handlers.image._fetch') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "handlers.image._fetch" not in out
