"""Fixtures for the deploy tests: one Lambda package built per session (the build is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.deploy._package import Artifact, build_artifact


@pytest.fixture(scope="session")
def lambda_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifact, Path]:
    """The artifact, and its unpacked tree (what Lambda extracts into /var/task)."""
    where = tmp_path_factory.mktemp("lambda")
    artifact = build_artifact(where / "dist", keep_tree=where / "tree")
    return artifact, where / "tree"
