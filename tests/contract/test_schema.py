"""The generated JSON Schema of a job's input, the ``comfy-relay schema`` command, and the result models."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout

import pytest
from pydantic import ValidationError

from handlers.cli import _schema
from handlers.contract import JobInput, JobResult, OutputItem, OutputKind, SeedUsed, Timings, job_input_schema


def test_schema_is_generated_from_the_model() -> None:
    schema = job_input_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(JobInput.model_fields)
    assert schema["properties"]["timeout_s"]["maximum"] == 604800
    assert schema["properties"]["images"]["deprecated"] is True
    json.dumps(schema)


def test_schema_changes_with_the_model() -> None:
    # Not hand-written: every field of every nested model shows up.
    defs = job_input_schema()["$defs"]
    assert set(defs["OutputOptions"]["properties"]) == {
        "bucket",
        "prefix",
        "format",
        "quality",
        "include_temp",
        "presign_seconds",
        "inline_base64_max_bytes",
        "name",
        "previews",
        "strip_metadata",
    }
    assert set(defs["QaOptions"]["properties"]) == {"enabled", "policy", "max_retries", "thresholds"}
    assert set(defs["MediaItem"]["properties"]) == {"name", "url", "base64", "s3", "mime"}


def _run_cli(*argv: str) -> str:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    _schema.register(commands)
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    with redirect_stdout(out):
        assert args.run(args) == 0
    return out.getvalue()


def test_cli_prints_the_schema() -> None:
    printed = _run_cli("schema")
    assert json.loads(printed) == json.loads(json.dumps(job_input_schema()))
    assert printed.startswith("{\n  ")


def test_cli_indent_option() -> None:
    compact = _run_cli("schema", "--indent", "0")
    assert json.loads(compact) == json.loads(_run_cli("schema"))
    assert "\n  " not in compact


def test_result_models() -> None:
    result = JobResult(
        job_id="j",
        prompt_id="p",
        outputs=[
            OutputItem(
                node_id="9",
                node_title="Save Image",
                kind=OutputKind.IMAGE,
                mime="image/png",
                bytes=3,
                sha256="a" * 64,
                width=8,
                height=8,
                s3_uri="s3://b/j/9/x.png",
                url="https://b/x",
            ),
            OutputItem(node_id="12", kind=OutputKind.TEXT, text="hello"),
            OutputItem(node_id="13", kind=OutputKind.MODEL_3D, filename="m.glb"),
        ],
        seeds=[SeedUsed(node_id="3", input="seed", value=42, param="seed", random=True)],
        timings=Timings(stage_ms=1, queue_wait_ms=2, nodes_ms={"3": 10}, upload_ms=3, total_ms=20),
        warnings=["w"],
    )
    assert JobResult.model_validate(result.model_dump(mode="json")) == result
    kinds = {"image", "animated", "video", "audio", "text", "latent", "3d", "model", "file"}
    assert {k.value for k in OutputKind} == kinds


@pytest.mark.parametrize("field", [{"sha256": "xyz"}, {"bytes": -1}, {"s3_uri": "https://x"}, {"kind": "gif"}])
def test_output_item_rejects_bad_fields(field: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        OutputItem.model_validate({"node_id": "1", "kind": "image", **field})


def test_cli_prints_the_character_pack_schema() -> None:
    from handlers.workflow import character_schema

    assert json.loads(_run_cli("schema", "--character")) == character_schema()
