"""The package's public surface."""

from __future__ import annotations

from handlers.local import comfyui


def test_all_is_sorted_and_importable() -> None:
    assert comfyui.__all__ == sorted(comfyui.__all__)
    assert all(hasattr(comfyui, name) for name in comfyui.__all__)
    assert {"EmulatorConfig", "create_app", "Faults", "validate_prompt"} <= set(comfyui.__all__)
