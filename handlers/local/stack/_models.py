"""Placeholder model files for the ComfyUI emulator: its loaders list the models folder (as ComfyUI's do), so every
file a template or a character names must exist there, but nothing is ever read from it."""

from __future__ import annotations

from pathlib import Path

from handlers.workflow import (
    TemplateError,
    default_workflows_dir,
    list_templates,
    load_template,
)

__all__ = ["REQUIRED_MODELS", "model_files", "place_model_files"]

#: Placed even when no template lists it: what the demo's SDXL template loads.
REQUIRED_MODELS = (("checkpoints", "sd_xl_base_1.0.safetensors"),)


def model_files(root: Path) -> set[tuple[str, str]]:
    """``(folder, file)`` of every model the templates under ``root`` declare; broken templates are skipped. A
    character's LoRA is not among them: the worker provisions it from the pack (``_pack_assets``)."""
    found = set(REQUIRED_MODELS)
    for character, name in list_templates(root):
        try:
            template = load_template(root, name, character=character)
        except TemplateError:
            continue
        if template.manifest is not None:
            found.update((model.folder, model.file) for model in template.manifest.models)
    return found


def place_model_files(models_dir: Path, root: Path | None = None) -> list[Path]:
    """Create an empty file for each model (existing files are left alone); returns the files created."""
    created: list[Path] = []
    for folder, file in sorted(model_files(root or default_workflows_dir())):
        path = models_dir / folder / file
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        created.append(path)
    return created
