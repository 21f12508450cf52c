"""JobInput: every rule, and every problem reported at once with a path."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from handlers.contract import (
    MAX_INLINE_BASE64_BYTES,
    GraphFormat,
    JobInput,
    MediaItem,
    Problem,
    format_path,
    graph_format,
    split_override_key,
    validation_problems,
)

API_GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
}
UI_GRAPH = {"last_node_id": 2, "nodes": [{"id": 1, "type": "EmptyImage"}], "links": [], "version": 0.4}
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        JobInput.model_validate(data)
    return {p.path: p.message for p in validation_problems(info.value)}


def test_minimal_inline_workflow_gets_finite_defaults() -> None:
    job = JobInput.model_validate({"workflow": API_GRAPH})
    assert job.workflow_format is GraphFormat.API
    assert job.timeout_s == 600
    assert job.output.presign_seconds == 3600
    assert job.output.inline_base64_max_bytes == 0
    assert job.output.format is None
    assert job.params == {} and job.overrides == {} and job.media == []


def test_template_with_character_params_and_overrides() -> None:
    job = JobInput.model_validate(
        {
            "template": "image/sdxl-basic",
            "character": "ava",
            "params": {"prompt": "hi", "width": 512, "extra": {"nested": [1, 2.5, None, True]}},
            "overrides": {"KSampler.steps": 4, "7:1.seed": 3, "My v1.2 node.text": "x"},
        }
    )
    assert job.workflow is None and job.workflow_format is None
    assert job.params["extra"] == {"nested": [1, 2.5, None, True]}


@pytest.mark.parametrize(
    ("graph", "expected"),
    [(API_GRAPH, GraphFormat.API), (UI_GRAPH, GraphFormat.UI), ({"nodes": [], "x": 1}, GraphFormat.API)],
)
def test_graph_format_detection(graph: dict[str, Any], expected: GraphFormat) -> None:
    assert graph_format(graph) is expected


def test_ui_workflow_is_accepted_as_is() -> None:
    job = JobInput.model_validate({"workflow": UI_GRAPH})
    assert job.workflow_format is GraphFormat.UI
    assert job.workflow == UI_GRAPH


def test_graph_that_is_neither_format_is_rejected() -> None:
    found = problems({"workflow": {"1": {"inputs": {}}, "2": "x"}})
    assert "class_type" in found["input.workflow"] and "'1'" in found["input.workflow"]


def test_empty_graph_is_rejected() -> None:
    assert "empty" in problems({"workflow": {}})["input.workflow"]


@pytest.mark.parametrize(
    "data",
    [{}, {"workflow": API_GRAPH, "template": "image/x"}, {"params": {"a": 1}}],
)
def test_exactly_one_of_workflow_or_template(data: dict[str, Any]) -> None:
    assert problems(data)["input"] == "give exactly one of workflow or template"


def test_character_needs_a_template() -> None:
    assert problems({"workflow": API_GRAPH, "character": "ava"})["input.character"] == "applies only with template"


@pytest.mark.parametrize("name", ["sdxl", "image/", "/x", "image/../etc", "Image/X", "a/b/c"])
def test_template_name_is_kind_slash_name(name: str) -> None:
    assert "input.template" in problems({"template": name})


def test_unknown_fields_are_rejected_at_every_level() -> None:
    found = problems({"workflow": API_GRAPH, "wrkflow": 1, "output": {"bukket": "x"}})
    assert found["input.wrkflow"] == "is not a known field"
    assert found["input.output.bukket"] == "is not a known field"


def test_every_problem_is_reported_at_once_with_paths() -> None:
    found = problems(
        {
            "template": "image/sdxl-basic",
            "workflow": API_GRAPH,
            "media": [{"name": "a.png", "url": "ftp://x"}, {"name": "b.png", "base64": "!!notbase64"}],
            "output": {"quality": 0, "presign_seconds": 10**9, "format": "gif"},
            "job_id": "has space",
            "timeout_s": 0,
            "overrides": {"nodot": 1},
            "params": {"bad-name": 1},
        }
    )
    assert found == {
        "input": "give exactly one of workflow or template",
        "input.media[0].url": "must be an http(s) URL",
        "input.media[1].base64": "is not valid base64",
        "input.output.quality": "must be >= 1",
        "input.output.presign_seconds": "must be <= 604800",
        "input.output.format": "must be one of 'png', 'jpeg', 'webp', 'wav' or 'flac'",
        "input.job_id": "must be 1-128 letters, digits, '_' or '-', starting with a letter or digit",
        "input.timeout_s": "must be >= 1",
        "input.overrides.nodot": "override key 'nodot' must be '<node id or title>.<input>'",
        "input.params.bad-name": "must be an identifier: letters, digits and '_', not starting with a digit",
    }


@pytest.mark.parametrize("job_id", ["a", "job-1", "A_b-9", "x" * 128, "eaebd6e7-6a92-4bb8-a911-f996ac5ea99d-u1"])
def test_safe_job_ids(job_id: str) -> None:
    assert JobInput.model_validate({"workflow": API_GRAPH, "job_id": job_id}).job_id == job_id


@pytest.mark.parametrize("job_id", ["", "-a", "a/b", "a.b", "../x", "x" * 129, "a b", "é"])
def test_unsafe_job_ids(job_id: str) -> None:
    assert "input.job_id" in problems({"workflow": API_GRAPH, "job_id": job_id})


def test_timeout_is_bounded_to_seven_days() -> None:
    assert JobInput.model_validate({"workflow": API_GRAPH, "timeout_s": 7 * 86400}).timeout_s == 604800
    assert problems({"workflow": API_GRAPH, "timeout_s": 7 * 86400 + 1})["input.timeout_s"] == "must be <= 604800"


def test_inline_base64_limit_stays_below_runpod_payload_limit() -> None:
    # base64 adds a third: the largest inline output must still fit RunPod's 10 MB result.
    assert MAX_INLINE_BASE64_BYTES * 4 / 3 < 10 * 1024 * 1024
    found = problems({"workflow": API_GRAPH, "output": {"inline_base64_max_bytes": MAX_INLINE_BASE64_BYTES + 1}})
    assert "input.output.inline_base64_max_bytes" in found


@pytest.mark.parametrize("prefix", ["a/../b", "..", "./x", "/abs", "a//b", "sp ace"])
def test_output_prefix_cannot_escape(prefix: str) -> None:
    assert "input.output.prefix" in problems({"workflow": API_GRAPH, "output": {"prefix": prefix}})


def test_output_options_accept_valid_values() -> None:
    job = JobInput.model_validate(
        {
            "workflow": API_GRAPH,
            "output": {
                "bucket": "my-bucket.v2",
                "prefix": "team/a",
                "format": "webp",
                "quality": 80,
                "include_temp": True,
                "presign_seconds": 604800,
                "inline_base64_max_bytes": 1000,
            },
        }
    )
    assert job.output.format == "webp" and job.output.include_temp is True


def test_bucket_name_rules() -> None:
    assert "input.output.bucket" in problems({"workflow": API_GRAPH, "output": {"bucket": "Bad_Bucket"}})


# -- media ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "a.png"}, "give exactly one of url, base64 or s3 (got none)"),
        (
            {"name": "a.png", "url": "https://x/a.png", "s3": "s3://bkt/a.png"},
            "give exactly one of url, base64 or s3 (got url, s3)",
        ),
    ],
)
def test_media_needs_exactly_one_source(item: dict[str, Any], message: str) -> None:
    assert problems({"workflow": API_GRAPH, "media": [item]})["input.media[0]"] == message


def test_media_sources() -> None:
    job = JobInput.model_validate(
        {
            "workflow": API_GRAPH,
            "media": [
                {"name": "a.png", "url": "https://example.com/a.png"},
                {"name": "b.png", "base64": PNG_B64},
                {"name": "c.png", "s3": "s3://bucket-1/in/c.png"},
                {"name": "d.png", "base64": "data:image/png;base64," + PNG_B64},
            ],
        }
    )
    assert [m.name for m in job.media] == ["a.png", "b.png", "c.png", "d.png"]
    assert job.media[1].payload() == b"\x89PNG\r\n\x1a\nfake"
    assert job.media[3].payload() == b"\x89PNG\r\n\x1a\nfake"
    assert job.media[3].declared_mime() == "image/png"
    assert job.media[1].declared_mime() is None
    with pytest.raises(ValueError, match="not inline base64"):
        job.media[0].payload()


@pytest.mark.parametrize("name", ["../x.png", "a/b.png", ".hidden", "", "x" * 129])
def test_media_names_are_safe_file_names(name: str) -> None:
    found = problems({"workflow": API_GRAPH, "media": [{"name": name, "base64": PNG_B64}]})
    assert "input.media[0].name" in found


@pytest.mark.parametrize("s3", ["http://x/y", "s3://b", "s3://UPPER/k"])
def test_media_s3_uri_shape(s3: str) -> None:
    assert "input.media[0].s3" in problems({"workflow": API_GRAPH, "media": [{"name": "a", "s3": s3}]})


def test_legacy_images_are_normalised_into_media() -> None:
    job = JobInput.model_validate(
        {
            "workflow": API_GRAPH,
            "media": [{"name": "a.png", "url": "https://x.test/a.png"}],
            "images": [
                {"name": "b.png", "image": PNG_B64},
                {"name": "c.png", "image": "data:image/webp;base64," + PNG_B64},
            ],
        }
    )
    assert job.images == []
    assert [m.name for m in job.media] == ["a.png", "b.png", "c.png"]
    assert job.media[1].payload() == base64.b64decode(PNG_B64)
    assert job.media[2].declared_mime() == "image/webp"
    assert isinstance(job.media[2], MediaItem)


def test_legacy_image_errors_have_paths() -> None:
    found = problems({"workflow": API_GRAPH, "images": [{"name": "b.png", "image": "%%%"}, {"name": "c.png"}]})
    assert found["input.images[0].image"] == "is not valid base64"
    assert found["input.images[1].image"] == "is required"


def test_media_names_are_unique_across_media_and_images() -> None:
    found = problems(
        {
            "workflow": API_GRAPH,
            "media": [{"name": "a.png", "base64": PNG_B64}],
            "images": [{"name": "a.png", "image": PNG_B64}],
        }
    )
    assert found["input.media"] == "names must be unique: a.png"


def test_media_count_is_bounded() -> None:
    items = [{"name": f"m{i}.png", "base64": PNG_B64} for i in range(65)]
    assert "input.media" in problems({"workflow": API_GRAPH, "media": items})


# -- overrides and progress webhook ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("KSampler.seed", ("KSampler", "seed")),
        ("7:1.seed", ("7:1", "seed")),
        ("a:b:c.noise_seed", ("a:b:c", "noise_seed")),
        ("Prompt v1.2.text", ("Prompt v1.2", "text")),
    ],
)
def test_override_keys_split_at_the_last_dot(key: str, expected: tuple[str, str]) -> None:
    assert split_override_key(key) == expected


@pytest.mark.parametrize("key", ["seed", ".seed", "KSampler.", ""])
def test_bad_override_keys(key: str) -> None:
    with pytest.raises(ValueError, match=re.escape("must be '<node id or title>.<input>'")):
        split_override_key(key)


def test_progress_webhook() -> None:
    job = JobInput.model_validate(
        {"workflow": API_GRAPH, "progress_webhook": {"url": "https://hooks.test/p", "secret": "s" * 16}}
    )
    assert job.progress_webhook is not None
    assert job.progress_webhook.min_interval_ms == 1000
    assert "s" * 16 not in repr(job.progress_webhook)
    found = problems(
        {"workflow": API_GRAPH, "progress_webhook": {"url": "file:///etc", "secret": "short", "min_interval_ms": 1}}
    )
    assert set(found) == {
        "input.progress_webhook.url",
        "input.progress_webhook.secret",
        "input.progress_webhook.min_interval_ms",
    }


def test_problem_paths() -> None:
    assert format_path("input", ["params", "width"]) == "input.params.width"
    assert format_path("input", ["media", 0, "url"]) == "input.media[0].url"
    assert format_path("input", ["overrides", "KSampler.seed"]) == 'input.overrides["KSampler.seed"]'
    assert format_path("input", ["workflow", "3"]) == 'input.workflow["3"]'
    assert str(Problem(path="input.params.width", message="must be <= 4096")) == "input.params.width: must be <= 4096"


def test_job_input_is_immutable() -> None:
    job = JobInput.model_validate({"workflow": API_GRAPH})
    with pytest.raises(ValidationError):
        job.timeout_s = 5


@given(
    node=st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s),
    input_name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
)
def test_override_key_split_inverts_joining(node: str, input_name: str) -> None:
    assert split_override_key(f"{node}.{input_name}") == (node, input_name)


def test_a_training_dataset_has_exactly_one_source_and_needs_a_template() -> None:
    from handlers.contract import Dataset

    zipped = base64.b64encode(b"PK\x05\x06" + bytes(18)).decode()
    assert Dataset.model_validate({"zip_base64": zipped}).s3_prefix is None
    assert Dataset.model_validate({"s3": "s3://bkt/sets/ava/"}).s3_prefix == "s3://bkt/sets/ava/"
    with pytest.raises(ValidationError) as info:
        JobInput.model_validate(
            {
                "workflow": {"1": {"class_type": "A", "inputs": {}}},
                "params": {"dataset": "x"},
                "dataset": {"zip_url": "ftp://x/a.zip", "urls": ["file:///etc/passwd"]},
                "register_as": "ava",
            }
        )
    found = [(p.path, p.message) for p in validation_problems(info.value)]
    paths = [path for path, _ in found]
    assert ("input.dataset", "give exactly one of zip_base64, zip_url, s3 or urls (got zip_url, urls)") in found
    assert ("input.dataset", "applies only with a training template") in found
    assert {"input.dataset.zip_url", "input.dataset.urls", "input.params.dataset"} <= set(paths)
    with pytest.raises(ValidationError, match="applies only to a training job"):
        JobInput.model_validate({"template": "image/sdxl-basic", "register_as": "ava"})
