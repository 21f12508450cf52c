"""The package's public surface (``__all__`` order is ruff's RUF022: constants, classes, functions)."""

from __future__ import annotations

import handlers.local.stack


def test_public_surface() -> None:
    assert handlers.local.stack.__all__ == [
        "ASSET_PREFIX",
        "AWS_TEST_CREDENTIALS",
        "DEFAULT_PORT_BASE",
        "SAMPLE_DATASET",
        "STATE_DIR_ENV",
        "STATE_FILE",
        "Child",
        "ChildState",
        "Component",
        "LocalStack",
        "StackConfig",
        "StackError",
        "StackInfo",
        "StackPorts",
        "Supervisor",
        "SupervisorLimits",
        "check_port_free",
        "default_state_dir",
        "dispatch_available",
        "free_port",
        "pack_asset_problems",
        "pid_alive",
        "place_model_files",
        "place_sample_inputs",
        "placeholder_asset",
        "placeholder_assets",
        "read_state",
        "sample_job",
        "state_dir_origin",
        "upload_pack_assets",
        "wait_healthy",
        "worker_available",
    ]
    assert all(hasattr(handlers.local.stack, name) for name in handlers.local.stack.__all__)
