"""Fixtures shared by every test layer."""

from __future__ import annotations

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
#: Recordings of a real ComfyUI 0.3.64 server (HTTP bodies and WebSocket frames), kept as test data.
TRANSCRIPTS = REPO / "tests" / "data" / "comfyui" / "transcripts"
#: ComfyUI 0.3.64's own /object_info, verbatim (the catalogue the recordings were made against).
OBJECT_INFO = REPO / "workflows" / "_catalogue" / "object_info.json"


@pytest.fixture(scope="session")
def transcripts_dir() -> Path:
    """The recordings of a real ComfyUI, in the repository: every test that replays them runs on a fresh clone."""
    return TRANSCRIPTS


@pytest.fixture(scope="session")
def object_info_path() -> Path:
    """ComfyUI 0.3.64's ``/object_info``, in the repository."""
    return OBJECT_INFO
