"""The Lambda package: only the base install, and every handler imports from it alone (no site-packages)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from handlers.deploy._package import FORBIDDEN_MODULES, Artifact

# Imports a handler the way Lambda does on a cold start (``import handlers.dispatch``, then the first call builds the
# runtime), with nothing on sys.path but the unpacked package and the standard library.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import handlers.dispatch as dispatch
from handlers.dispatch import _runtime
_runtime.runtime()
if sys.argv[2] == "on_queue":
    assert dispatch.on_queue({"Records": []}) == {"batchItemFailures": []}
loaded = sorted({m.split(".")[0] for m in sys.modules} | {m for m in sys.modules if m.startswith("handlers.")})
print(json.dumps(loaded))
"""
ENV = {
    "PATH": "/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "RELAY_JOBS_TABLE": "jobs",
    "RELAY_S3_BUCKET": "bucket-1",
    "RUNPOD_ENDPOINT_ID": "ep",
    "RUNPOD_API_KEY": "rpa_TEST",
    "RELAY_WEBHOOK_URL": "https://hooks.example/",
    "RELAY_WEBHOOK_TOKEN": "0123456789abcdef0",
    "RELAY_PROGRESS_SECRET": "0123456789abcdef0",
    "RELAY_API_TOKEN": "0123456789abcdef0",
}


def test_the_package_holds_the_base_install_only(lambda_package: tuple[Artifact, Path]) -> None:
    artifact, _ = lambda_package
    with zipfile.ZipFile(artifact.path) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    assert {"handlers", "boto3", "botocore", "httpx", "pydantic", "pydantic_core"} <= tops
    assert not tops & set(FORBIDDEN_MODULES)
    packages = {name.split("/")[1] for name in names if name.startswith("handlers/") and name.count("/") > 1}
    assert packages - {"__pycache__"} == {"common", "contract", "dispatch", "outbound", "workflow"}
    assert any(name.endswith("handlers/dispatch/catalogue.json") for name in names)
    assert any(name.startswith("handlers/dispatch/__pycache__/") for name in names)  # bytecode ships
    assert artifact.size_bytes < 50 * 1024 * 1024  # Lambda's limit for a zip uploaded directly
    assert artifact.path.name.startswith(f"comfy-relay-lambda-{artifact.sha256[:16]}")


@pytest.mark.parametrize("handler", ["on_queue", "on_webhook", "reconcile"])
def test_each_handler_imports_from_the_package_alone(lambda_package: tuple[Artifact, Path], handler: str) -> None:
    _, tree = lambda_package
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(tree), handler],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert not loaded & set(FORBIDDEN_MODULES)
    assert not {m for m in loaded if m.startswith(("handlers.cli", "handlers.local", "handlers.worker"))}
