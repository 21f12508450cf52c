"""``output.name`` patterns: parsed up front, rendered into keys that can never leave the prefix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from handlers.contract import JobInput, NamePattern, name_value, validation_problems


def test_a_pattern_splits_into_literals_and_fields() -> None:
    pattern = NamePattern.parse("projects/{project}/images/{sentence}")
    assert pattern.fields == ("project", "sentence")
    assert not pattern.has_ext
    key = pattern.render({"project": "p1", "sentence": "42", "ext": "png"})
    assert key == "projects/p1/images/42.png"  # the stored format's extension is added when {ext} is absent
    assert NamePattern.parse("{job_id}/{index}.{ext}").render({"job_id": "j", "index": "0", "ext": "webp"}) == (
        "j/0.webp"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("/abs/{x}", "relative"),
        ("a//{x}", "empty segment"),
        ("a/{x}/", "empty segment"),
        ("../{x}", "'..' segment"),
        ("a/./{x}", "'.' segment"),
        ("a/{x", "'{'"),
        ("a/{x-y}", "'{'"),
        ("a b/{x}", "' '"),
        ("a\\b", "'\\\\'"),
        ("x" * 513, "longer"),
        ("/".join(["{a}"] * 8), "could render keys of"),
    ],
)
def test_unsafe_patterns_are_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        NamePattern.parse(text)
    assert says in str(caught.value)


def test_values_cannot_add_segments_or_climb() -> None:
    pattern = NamePattern.parse("out/{a}")
    assert pattern.render({"a": "../../etc/passwd"}) == "out/etc-passwd"
    assert pattern.render({"a": ".."}) == "out/_"
    assert name_value("A café at dawn, 16:9!") == "A-cafe-at-dawn,-16-9"
    assert len(name_value("word " * 100)) <= 64


def test_the_job_input_reports_a_bad_pattern_at_its_path() -> None:
    with pytest.raises(ValidationError) as caught:
        JobInput.model_validate({"template": "image/x", "output": {"name": "../{job_id}"}})
    assert [p.path for p in validation_problems(caught.value)] == ["input.output.name"]
    job = JobInput.model_validate(
        {"template": "image/x", "labels": {"project": "p1"}, "output": {"name": "{project}/{index}"}}
    )
    assert job.labels == {"project": "p1"} and job.output.name == "{project}/{index}"
    with pytest.raises(ValidationError):
        JobInput.model_validate({"template": "image/x", "labels": {"bad key": "v"}})
