"""The built image, end to end (opt-in: it needs buildah, a built image and minutes of CPU, so CI skips it).

comfy-relay image build --offline --comfyui-src DIR --wheels DIR     # once, outside CI
RELAY_TEST_IMAGE=localhost/comfy-relay-worker:test pytest tests/image/test_image_smoke.py
"""

from __future__ import annotations

import os
import shutil

import pytest

TAG = os.environ.get("RELAY_TEST_IMAGE", "")

pytestmark = [
    pytest.mark.skipif(not TAG, reason="set RELAY_TEST_IMAGE to a built test-profile image to run it"),
    pytest.mark.skipif(shutil.which("buildah") is None, reason="needs buildah (apt-get install buildah)"),
    pytest.mark.timeout(900),
]


def test_the_image_runs_a_job_through_runpod_run() -> None:
    from handlers.image._smoke import smoke

    report = smoke(TAG, timeout_s=600)
    assert report["status"] == "COMPLETED"
    assert "128x96" in report["output_sizes"]  # the generated x2 upscaler ran inside the real ComfyUI
    assert report["progress_chunks"] >= 1
