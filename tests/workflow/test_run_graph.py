"""prepare_run: the graph one attempt of one job queues, its media staged and its outputs under their own prefix."""

from __future__ import annotations

import pytest

from handlers.workflow import BoundWorkflow, MediaBinding, ParamType, prepare_run


def test_media_and_output_prefixes_are_rewritten_on_a_copy() -> None:
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "face"}},
        "2": {"class_type": "Custom", "inputs": {"refs": ["face", "other"], "text": "a face"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "/out/img"}},
    }
    binding = MediaBinding(param="face", type=ParamType.IMAGE, value="face", from_job=True, targets=(("1", "image"),))
    bound = BoundWorkflow(graph=graph, media=[binding])
    run = prepare_run(bound, job_id="job-1", attempt="a1", staged={"face": "job-1/face.png"})
    assert run["1"]["inputs"]["image"] == "job-1/face.png"
    # Only the bound file input: a value elsewhere that equals a media name is not a file reference (issue 11).
    assert run["2"]["inputs"] == {"refs": ["face", "other"], "text": "a face"}
    assert run["3"]["inputs"]["filename_prefix"] == "job-1/a1/out/img"
    assert graph["3"]["inputs"]["filename_prefix"] == "/out/img" and graph["1"]["inputs"]["image"] == "face"
    again = prepare_run(bound, job_id="job-1", attempt="a2", staged={"face": "job-1/face.png"})
    assert again["3"]["inputs"]["filename_prefix"] == "job-1/a2/out/img"


def test_a_bound_media_item_that_was_not_staged_is_an_error() -> None:
    binding = MediaBinding(param="face", type=ParamType.IMAGE, value="face", from_job=True, targets=(("1", "image"),))
    bound = BoundWorkflow(graph={"1": {"inputs": {"image": "face"}}}, media=[binding])
    with pytest.raises(KeyError, match="face"):
        prepare_run(bound, job_id="j", attempt="a")


def test_prefixes_are_normalised_under_the_job_and_never_climb_out() -> None:
    """Issue 11, item 5: separators, '.' and empty segments normalised; '..' refused."""
    graph = {
        "1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "/./a//b/./c"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "/"}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x\\y"}},
    }
    out = prepare_run(BoundWorkflow(graph=graph), job_id="job-1", attempt="att")
    assert out["1"]["inputs"]["filename_prefix"] == "job-1/att/a/b/c"
    assert out["2"]["inputs"]["filename_prefix"] == "job-1/att/ComfyUI"
    assert out["3"]["inputs"]["filename_prefix"] == "job-1/att/x/y"
    bad = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "../x"}}}
    with pytest.raises(ValueError, match=r"'\.\.'"):
        prepare_run(BoundWorkflow(graph=bad), job_id="job-1", attempt="a")
