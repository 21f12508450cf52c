"""The embedded local stack: moto, the ComfyUI and RunPod emulators, SDK workers and the Lambda event sources, run
and supervised on loopback (``comfy-relay local up``)."""

from handlers.local.stack._config import DEFAULT_PORT_BASE, Component, StackConfig, StackPorts, free_port
from handlers.local.stack._health import StackError, check_port_free, wait_healthy
from handlers.local.stack._models import place_model_files
from handlers.local.stack._pack_assets import (
    ASSET_PREFIX,
    pack_asset_problems,
    placeholder_asset,
    placeholder_assets,
    upload_pack_assets,
)
from handlers.local.stack._samples import SAMPLE_DATASET, place_sample_inputs, sample_job
from handlers.local.stack._stack import AWS_TEST_CREDENTIALS, LocalStack, dispatch_available, worker_available
from handlers.local.stack._state import (
    STATE_DIR_ENV,
    STATE_FILE,
    StackInfo,
    default_state_dir,
    pid_alive,
    read_state,
    state_dir_origin,
)
from handlers.local.stack._supervisor import Child, ChildState, Supervisor, SupervisorLimits

__all__ = [
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
