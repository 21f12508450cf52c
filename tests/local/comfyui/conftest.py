"""Fixtures for the ComfyUI emulator: a real server on 127.0.0.1 port 0 with its own data and models folders.

Later layers (the worker's tests) reuse ``comfyui_emulator``: ``.url``, ``.ws_url``, ``.config``, ``.folders`` and
``.set_faults(...)`` / ``.clear_faults()`` / ``.release()`` / ``.reset()`` (the admin routes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.local._serving import ServerThread
from handlers.local.comfyui import EMULATOR, Emulator, EmulatorConfig, create_app
from handlers.local.comfyui._node import Folders

HERE = Path(__file__).resolve().parent


#: Model files the recordings used; empty files are enough for the emulator's loaders and combos.
TEST_MODELS = (
    "checkpoints/tiny-sd15-random.safetensors",
    "upscale_models/tiny-compact-x2-random.safetensors",
)


@dataclass
class ComfyEmulator:
    """A running emulator and the admin calls a test needs."""

    server: ServerThread
    config: EmulatorConfig

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return "ws" + self.server.url.removeprefix("http") + "/ws"

    @property
    def state(self) -> Emulator:
        assert self.server.app is not None
        return self.server.app[EMULATOR]

    @property
    def data_dir(self) -> Path:
        assert self.config.data_dir is not None
        return self.config.data_dir

    def _admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = httpx.request(method, self.url + path, json=body, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self._admin("POST", "/_emulator/faults", faults)

    def clear_faults(self) -> dict[str, Any]:
        return self._admin("DELETE", "/_emulator/faults")

    def release(self) -> None:
        self._admin("POST", "/_emulator/release")

    def reset(self) -> None:
        self._admin("POST", "/_emulator/reset")

    def drop_websockets(self) -> int:
        return int(self._admin("POST", "/_emulator/websockets/drop")["dropped"])


@pytest.fixture
def comfyui_models(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    for name in TEST_MODELS:
        path = models / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return models


@pytest.fixture
def comfyui_emulator_factory(tmp_path: Path, comfyui_models: Path) -> Iterator[Callable[..., ComfyEmulator]]:
    """``factory(step_delay=..., ...)`` starts an emulator with those config fields (stopped at teardown)."""
    servers: list[ServerThread] = []
    counter = iter(range(1_000_000))

    def factory(**overrides: Any) -> ComfyEmulator:
        settings: dict[str, Any] = {"data_dir": tmp_path / f"data{next(counter)}", "models_dir": comfyui_models}
        settings.update(overrides)
        config = EmulatorConfig(**settings)
        server = ServerThread(lambda: create_app(config)).start()
        servers.append(server)
        return ComfyEmulator(server, config)

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def comfyui_emulator(comfyui_emulator_factory: Callable[..., ComfyEmulator]) -> ComfyEmulator:
    return comfyui_emulator_factory()


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    """Empty input, output, temp and models folders: for running nodes, validation and the executor serverless."""
    found = Folders(tmp_path / "input", tmp_path / "output", tmp_path / "temp", tmp_path / "models")
    for path in (found.input, found.output, found.temp, found.models):
        path.mkdir()
    return found
