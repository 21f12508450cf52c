"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The emulator and AWS fixtures serve every layer that runs against them (worker, dispatch, local stack).
from tests.local.comfyui.conftest import comfyui_emulator, comfyui_emulator_factory, comfyui_models
from tests.worker.conftest import fault_proxy, moto_endpoint, s3_bucket

__all__ = [
    "comfyui_emulator",
    "comfyui_emulator_factory",
    "comfyui_models",
    "fault_proxy",
    "moto_endpoint",
    "s3_bucket",
]

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    return Path(os.environ.get("COMFY_RELAY_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout: recordings of a real ComfyUI and research data. Skips when absent."""
    path = _shared_dir()
    if not (path / "comfyui" / "transcripts").is_dir():
        pytest.skip(f"../shared is absent ({path}): the recordings of a real ComfyUI are needed for this test")
    return path
