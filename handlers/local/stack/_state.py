"""What a running stack tells other commands: its URLs, the environment a client needs, and its pids.

Written to ``<state dir>/stack.json`` once every part is healthy and removed on shutdown, so ``comfy-relay demo`` (or
any client) can find and reuse a stack started elsewhere with ``comfy-relay local up``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_DIR_ENV",
    "STATE_FILE",
    "StackInfo",
    "default_state_dir",
    "pid_alive",
    "read_state",
    "remove_state",
    "state_dir_origin",
    "write_state",
]

STATE_FILE = "stack.json"
STATE_DIR_ENV = "COMFY_RELAY_STATE_DIR"


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Per user, not per working directory, so every command finds the stack from any folder:
    ``$COMFY_RELAY_STATE_DIR``, else ``$XDG_STATE_HOME/comfy-relay``, else ``~/.local/state/comfy-relay``."""
    env = os.environ if environ is None else environ
    configured = env.get(STATE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    xdg = env.get("XDG_STATE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "comfy-relay"


def state_dir_origin(environ: Mapping[str, str] | None = None) -> str:
    """Where :func:`default_state_dir` got its answer, for messages that say where a stack was looked for."""
    env = os.environ if environ is None else environ
    if env.get(STATE_DIR_ENV, "").strip():
        return f"${STATE_DIR_ENV}"
    if env.get("XDG_STATE_HOME", "").strip():
        return "$XDG_STATE_HOME/comfy-relay"
    return f"the per-user default; set ${STATE_DIR_ENV} or --state-dir to change it"


@dataclass
class StackInfo:
    supervisor_pid: int
    state_dir: str
    urls: dict[str, str] = field(default_factory=dict)
    #: What a client (CLI, SDK, boto3) needs to talk to this stack.
    client_env: dict[str, str] = field(default_factory=dict)
    #: What a worker process got (for running one by hand beside the stack).
    worker_env: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    #: The parts started (e.g. ``comfyui``, ``runpod``, ``moto``, ``worker-1``, ``events``).
    parts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(info: StackInfo) -> Path:
    folder = Path(info.state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATE_FILE
    partial = path.with_name(path.name + ".part")
    partial.write_text(info.to_json())
    partial.replace(path)
    return path


def read_state(state_dir: Path) -> StackInfo | None:
    """The stack recorded in ``state_dir`` if its supervisor is still alive; a stale file is removed."""
    path = state_dir / STATE_FILE
    try:
        info = StackInfo.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None
    if not pid_alive(info.supervisor_pid):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return info


def remove_state(state_dir: Path, supervisor_pid: int) -> None:
    """Remove the state file if it is ours (another stack may have replaced it)."""
    path = state_dir / STATE_FILE
    with contextlib.suppress(OSError, ValueError, TypeError):
        if StackInfo.from_json(path.read_text()).supervisor_pid == supervisor_pid:
            path.unlink()
