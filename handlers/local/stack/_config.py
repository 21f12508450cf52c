"""Settings of the local stack: where it listens, where it keeps files, what it runs."""

from __future__ import annotations

import enum
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_PORT_BASE", "Component", "StackConfig", "StackPorts", "free_port"]

#: Ports are fixed and well known by default, so a client can be pointed at the stack without reading its output.
DEFAULT_PORT_BASE = 8480


class Component(enum.Enum):
    """The parts of the stack that listen on a port, with their offset from the port base."""

    COMFYUI = ("comfyui", 0, "ComfyUI emulator")
    RUNPOD = ("runpod", 1, "RunPod emulator")
    MOTO = ("moto", 2, "moto server (S3, SQS, DynamoDB)")
    LAMBDA_URL = ("lambda-url", 3, "Lambda function URL (on_webhook)")

    def __init__(self, key: str, offset: int, label: str) -> None:
        self.key = key
        self.offset = offset
        self.label = label


def free_port(host: str) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class StackPorts:
    comfyui: int
    runpod: int
    moto: int
    lambda_url: int

    @classmethod
    def from_base(cls, base: int, host: str = "127.0.0.1") -> StackPorts:
        """Consecutive ports from ``base``; ``base`` 0 lets the OS pick each one (tests, several stacks at once)."""
        if base == 0:
            return cls(*(free_port(host) for _ in Component))
        if not 1 <= base <= 65535 - len(Component):
            raise ValueError(f"port base must be 0 or within 1..{65535 - len(Component)}, got {base}")
        return cls(*(base + c.offset for c in Component))

    def of(self, component: Component) -> int:
        port: int = getattr(self, component.key.replace("-", "_"))
        return port


@dataclass(frozen=True, slots=True)
class StackConfig:
    """``comfyui_url`` set: use that ComfyUI (a real one works the same) instead of starting the emulator; then
    ``comfyui_input_dir``/``comfyui_output_dir`` may name its folders when they are on this machine."""

    state_dir: Path
    host: str = "127.0.0.1"
    port_base: int = DEFAULT_PORT_BASE
    workers: int = 1
    #: Workers in streaming mode (``RELAY_STREAM``). Off by default, as a default deployment runs: result mode.
    stream: bool = False
    comfyui_url: str | None = None
    comfyui_input_dir: Path | None = None
    comfyui_output_dir: Path | None = None
    #: Sampler step delay of the ComfyUI emulator, so progress is visible in the demo.
    step_delay_s: float = 0.02
    #: How long each component gets to become healthy.
    ready_timeout_s: float = 30.0
    #: Seconds between reconcile invocations.
    reconcile_interval_s: float = 60.0
    endpoint_id: str = "local-endpoint"
    api_key: str = "local-api-key"
    worker_key: str = "local-worker-key"
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        if self.keep_runs < 1:
            raise ValueError("keep_runs must be >= 1")
        if self.ready_timeout_s <= 0 or self.reconcile_interval_s <= 0:
            raise ValueError("ready_timeout_s and reconcile_interval_s must be positive")

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    #: This run's name: its logs go to ``logs/<run>/`` (``logs/latest`` points there), so each run starts clean.
    run_name: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    #: How many runs' logs are kept (older ones are removed when a stack starts).
    keep_runs: int = 5

    @property
    def logs_root(self) -> Path:
        return self.state_dir / "logs"

    @property
    def log_dir(self) -> Path:
        return self.logs_root / self.run_name
