"""Dispatch's pre-validation takes the graph-edit parameters exactly as the worker does: split from the template's
own parameters, applied after binding, a seed batch checked as the one graph the worker queues."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.contract import ErrorCode, JobInput
from handlers.dispatch._errors import InvalidJobError
from handlers.dispatch._validation import InputValidator
from tests.conftest import REPO

SAMPLER: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 0,
            "steps": 2,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["6", 0],
            "latent_image": ["5", 0],
        },
    },
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
}


@pytest.fixture(scope="module")
def validator() -> InputValidator:
    return InputValidator(workflows=REPO / "workflows")


def _job(**fields: Any) -> JobInput:
    return JobInput.model_validate(fields)


@pytest.mark.parametrize(
    "params",
    [
        {"seeds": [1, 2, 3]},
        {"count": 2, "seed": 5},
        {"aspect_ratio": "16:9", "megapixels": 0.5},
        {"loras": [{"name": "detail.safetensors", "strength": 0.7}]},
    ],
)
def test_a_template_job_with_edits_is_accepted(validator: InputValidator, params: dict[str, Any]) -> None:
    assert validator.check(_job(template="image/sdxl-basic", params={"prompt": "a cat", **params}), "j") == []


def test_an_inline_workflow_with_a_seed_batch_is_accepted(validator: InputValidator) -> None:
    assert validator.check(_job(workflow=SAMPLER, params={"seeds": [3, 4]}), "j") == []


def test_references_must_name_media_items(validator: InputValidator) -> None:
    job = _job(template="image/sdxl-basic", params={"prompt": "a cat", "references": ["face"]})
    with pytest.raises(InvalidJobError) as info:
        validator.check(job, "j")
    assert info.value.error.code is ErrorCode.INVALID_INPUT
    assert [p.path for p in info.value.error.problems] == ["input.params.references"]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"count": 99}, "input.params.count"),
        ({"seeds": [1], "count": 2}, "input.params.count"),
        ({"aspect_ratio": "wide"}, "input.params.aspect_ratio"),
        ({"nonsense": 1}, "input.params.nonsense"),
    ],
)
def test_bad_edit_parameters_are_rejected_with_their_path(
    validator: InputValidator, params: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidJobError) as info:
        validator.check(_job(template="image/sdxl-basic", params={"prompt": "a cat", **params}), "j")
    assert info.value.error.code is ErrorCode.INVALID_INPUT
    assert path in [p.path for p in info.value.error.problems]


def test_output_names_and_prompt_batches_are_checked_as_the_worker_checks_them(validator: InputValidator) -> None:
    ok = _job(
        template="image/sdxl-basic",
        params={"prompts": ["a cat", "a dog"], "seeds": [1, 2]},
        labels={"project": "p1"},
        output={"name": "projects/{project}/{variation}"},
    )
    assert validator.check(ok, "j") == []
    clash = _job(workflow=SAMPLER, params={"seeds": [3, 4]}, output={"name": "same/{job_id}"})
    with pytest.raises(InvalidJobError) as info:
        validator.check(clash, "j")
    assert [p.path for p in info.value.error.problems] == ["input.output.name"]
    assert "add {node}" in info.value.error.problems[0].message
    unknown = _job(template="image/sdxl-basic", params={"prompt": "a cat"}, output={"name": "{project}"})
    with pytest.raises(InvalidJobError) as info:
        validator.check(unknown, "j")
    assert "{project} is not a label" in info.value.error.problems[0].message
