"""The bundled /object_info snapshot: ComfyUI's core nodes plus what the project's workflows use, verbatim."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from handlers.dispatch._validation import DEFAULT_CATALOGUE
from tests.conftest import REPO


def _snapshot() -> dict[str, object]:
    data: dict[str, object] = json.loads(DEFAULT_CATALOGUE.read_text())
    return data


def _used_classes() -> set[str]:
    used: set[str] = set()
    for path in (REPO / "workflows").rglob("workflow.json"):
        used |= set(re.findall(r'"class_type":\s*"([^"]+)"', path.read_text()))
    return used


def _custom_node_classes() -> set[str]:
    path = REPO / "workflows" / "_catalogue" / "custom_nodes.json"
    if not path.is_file():
        return set()
    return {name for pack in json.loads(path.read_text())["packs"] for name in pack.get("nodes", {})}


def test_snapshot_covers_every_core_class_the_workflows_use() -> None:
    used = _used_classes()
    assert used, "the workflows folder should hold graphs"
    # Custom-node classes are not in ComfyUI's own catalogue: dispatch leaves those graphs to the worker.
    assert used - _custom_node_classes() <= set(_snapshot())


def test_snapshot_entries_are_real_comfyui_entries(object_info_path: Path) -> None:
    real = json.loads(object_info_path.read_text())
    snapshot = _snapshot()
    assert {name for name, info in real.items() if info.get("python_module") == "nodes"} <= set(snapshot)
    for name, info in snapshot.items():
        assert real[name] == info, name


def _sample(spec: Any) -> Any:
    """A value a caller could send for a required parameter."""
    from handlers.workflow import MEDIA_TYPES, ParamType

    param = spec.param
    if spec.type in MEDIA_TYPES:
        return f"media-{spec.name}"
    if spec.type is ParamType.CHOICE and param is not None and param.choices:
        return param.choices[0]
    if spec.type in (ParamType.INT, ParamType.FLOAT):
        return param.min if param is not None and param.min is not None else 1
    if spec.type is ParamType.BOOL:
        return True
    if spec.type is None:
        return 64  # an undeclared placeholder: solid-color's are sizes and a colour
    return "a sample value"


def test_every_project_template_passes_dispatch_validation() -> None:
    """No false rejections: each template with sample values for its required parameters is accepted."""
    from handlers.contract import JobInput
    from handlers.dispatch._validation import InputValidator
    from handlers.workflow import list_templates, load_template

    validator = InputValidator(workflows=REPO / "workflows")
    checked = 0
    for character, name in list_templates(REPO / "workflows"):
        template = load_template(REPO / "workflows", name, character)
        params = {n: _sample(s) for n, s in template.params().items() if s.required}
        media = [
            {"name": v, "url": "https://media.example/x.png"} for v in params.values() if str(v).startswith("media-")
        ]
        job = JobInput.model_validate({"template": name, "character": character, "params": params, "media": media})
        validator.check(job, "job-1")  # raises InvalidJobError on a rejection
        checked += 1
    assert checked >= 3


def test_a_training_job_with_a_dataset_passes_dispatch_validation() -> None:
    """The job's dataset fills the template's dataset parameter, and Ava's first trigger word its trigger word."""
    from handlers.contract import JobInput
    from handlers.dispatch._errors import InvalidJobError
    from handlers.dispatch._validation import InputValidator

    validator = InputValidator(workflows=REPO / "workflows")
    job = JobInput.model_validate(
        {"template": "train/lora-sdxl", "character": "ava", "dataset": {"s3": "s3://bkt/sets/ava/"}}
    )
    validator.check(job, "job-1")
    bare = JobInput.model_validate({"template": "train/lora-sdxl", "dataset": {"s3": "s3://bkt/sets/ava/"}})
    with pytest.raises(InvalidJobError, match="trigger_word"):
        validator.check(bare, "job-2")
