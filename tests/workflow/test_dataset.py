"""The pure half of a training dataset: archive plans, names, shot types, composition, the verdict; and what a
training graph means for a run (the LoRA's name, its prefix under the job's folder, the dataset folder combo)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.contract import OutputItem, OutputKind
from handlers.workflow import (
    DatasetInvalid,
    DatasetLimits,
    ImageFacts,
    ShotType,
    ZipMember,
    check_dataset,
    dataset_file,
    is_training_graph,
    load_template,
    lora_pack_entry,
    plan_zip,
    prepare_run,
    resolve_template,
    saved_models,
    shot_type,
    validate,
    with_custom_nodes,
)
from handlers.workflow._dataset import composition_warning
from tests.conftest import REPO

WORKFLOWS = REPO / "workflows"
LIMITS = DatasetLimits()


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("a.png", "a.png"),
        ("photos/a.JPG", "photos/a.JPG"),
        ("10_ava/a.txt", "10_ava/a.txt"),
        ("./a.webp", "a.webp"),
        ("__MACOSX/._a.png", None),
        ("photos/", None),
        (".hidden.png", None),
        ("notes.md", None),
    ],
)
def test_dataset_file_keeps_images_and_captions(name: str, kept: str | None) -> None:
    found = dataset_file(name)
    assert (found.path if found else None) == kept


@pytest.mark.parametrize("name", ["../a.png", "/etc/a.png", "a/../../b.png", "C:/a.png", "a\\b.png", "x/y/z.png"])
def test_dataset_file_refuses_names_that_climb_or_nest(name: str) -> None:
    with pytest.raises(ValueError, match=r"climbs|unsafe|nested"):
        dataset_file(name)


def test_plan_zip_reports_every_problem_at_once() -> None:
    members = [
        ZipMember("ok.png", 1000, 900),
        ZipMember("../up.png", 10, 10),
        ZipMember("bomb.png", 50 * 1024 * 1024, 10_000),
        ZipMember("OK.png", 1000, 900),
        ZipMember("dir/", 0, 0, is_dir=True),
    ]
    with pytest.raises(DatasetInvalid) as caught:
        plan_zip(members, LIMITS)
    paths = [p.path for p in caught.value.problems]
    assert paths == ["input.dataset['../up.png']", "input.dataset['bomb.png']", "input.dataset['OK.png']"]
    assert caught.value.to_job_error("j").code.value == "invalid_input"


def test_plan_zip_bounds_count_and_total_size() -> None:
    limits = DatasetLimits(max_files=10, max_images=5, max_total_bytes=5000)
    with pytest.raises(DatasetInvalid, match="11 entries"):
        plan_zip([ZipMember(f"{i}.png", 1, 1) for i in range(11)], limits)
    with pytest.raises(DatasetInvalid, match="unpacks to 6000 bytes"):
        plan_zip([ZipMember(f"{i}.png", 2000, 2000) for i in range(3)], limits)
    assert plan_zip([ZipMember("a/b.png", 10, 10), ZipMember("a/b.txt", 3, 3)], limits) == {
        "a/b.png": "a/b.png",
        "a/b.txt": "a/b.txt",
    }


@pytest.mark.parametrize(
    ("caption", "shot"),
    [
        ("close-up portrait, smiling", ShotType.FACE),
        ("headshot", ShotType.FACE),
        ("upper body, arms crossed", ShotType.UPPER_BODY),
        ("full body portrait, standing", ShotType.FULL_BODY),
        ("a woman in a garden", None),
    ],
)
def test_shot_type_from_caption_tags(caption: str, shot: ShotType | None) -> None:
    assert shot_type(caption) is shot


def test_composition_against_the_70_20_10_guideline() -> None:
    good = [ShotType.FACE] * 7 + [ShotType.UPPER_BODY] * 2 + [ShotType.FULL_BODY]
    assert composition_warning(good)[1] is None
    counts, warning = composition_warning([ShotType.FULL_BODY] * 5 + [ShotType.FACE] * 5 + [None])
    assert counts == {"face": 5, "upper_body": 0, "full_body": 5, "unknown": 1}
    assert warning is not None and "50% face / 0% upper body / 50% full body" in warning and "1 image(s)" in warning
    assert composition_warning([None, None]) == ({"face": 0, "upper_body": 0, "full_body": 0, "unknown": 2}, None)


def test_check_dataset_hard_problems_and_warnings() -> None:
    with pytest.raises(DatasetInvalid) as caught:
        check_dataset([ImageFacts("a.png", 10, error="truncated"), ImageFacts("b.png", 10, 32, 32)], [], LIMITS)
    messages = [str(p) for p in caught.value.problems]
    assert any("a.png" in m and "decoded" in m for m in messages)
    assert any("b.png" in m and "at least 64" in m for m in messages)
    assert any("at least 3" in m for m in messages)

    images = [ImageFacts(f"{i}.png", 100, 768, 1024, caption="close-up" if i else None) for i in range(4)]
    report = check_dataset(images, ["orphan.txt"], LIMITS, resolution=1024)
    assert (report.images, report.captioned, report.total_bytes) == (4, 3, 400)
    text = " | ".join(report.warnings)
    assert "4 images" in text and "smaller than 1024" in text and "1 of 4" in text and "orphan.txt" in text
    assert "composition" in text  # all known shots are faces: 100% / 0% / 0%


def training_graph() -> dict[str, Any]:
    template = load_template(WORKFLOWS, "train/lora-sdxl")
    bound = resolve_template(template, {"dataset": "job-1/dataset", "trigger_word": "zx", "steps": 200}, {})
    return prepare_run(bound, job_id="job-1", attempt="a1")


def test_a_run_saves_the_lora_under_the_jobs_folder_with_a_known_name() -> None:
    graph = training_graph()
    assert graph["5"]["inputs"]["prefix"] == "job-1/a1/loras/character_lora"
    assert is_training_graph(graph)
    (saved,) = saved_models(graph)
    assert (saved.node_id, saved.title, saved.subfolder) == ("5", "Save LoRA", "job-1/a1/loras")
    assert saved.filename == "character_lora_200_steps_00001_.safetensors" and saved.stem == "character_lora"
    # Continuing an earlier LoRA: ComfyUI adds the steps in its file name.
    graph["4"]["inputs"]["existing_lora"] = "ava_500_steps_00001_.safetensors"
    assert saved_models(graph)[0].filename == "character_lora_700_steps_00001_.safetensors"


def test_the_dataset_folder_is_checked_by_comfyui_not_the_catalogue_snapshot() -> None:
    catalogue = with_custom_nodes(json.loads((WORKFLOWS / "_catalogue" / "object_info.json").read_text()), WORKFLOWS)
    report = validate(training_graph(), catalogue)
    assert [i for i in report.issues if i.input == "folder"] == []


def test_a_pack_entry_names_the_model_output() -> None:
    model = OutputItem(
        node_id="5",
        kind=OutputKind.MODEL,
        filename="l_10_steps_00001_.safetensors",
        s3_uri="s3://b/k/l.safetensors",
        sha256="0" * 64,
        bytes=10,
    )
    image = OutputItem(node_id="14", kind=OutputKind.IMAGE, filename="s.png")
    entry = lora_pack_entry("ava", [image, model], "zx")
    assert entry is not None and entry.file == "ava/l_10_steps_00001_.safetensors" and entry.trigger_words == ["zx"]
    assert lora_pack_entry("ava", [image], "zx") is None
