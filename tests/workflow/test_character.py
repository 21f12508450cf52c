"""Character packs, pure: the manifest model and its checks, where an asset is fetched from, which assets a bound
graph uses and how it names them once placed, registering a trained LoRA, the generated JSON Schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from handlers.local.stack import pack_asset_problems
from handlers.workflow import (
    AssetBaseMissing,
    AssetKind,
    BoundWorkflow,
    CharacterLora,
    CharacterProfile,
    MediaBinding,
    ParamType,
    asset_location,
    assets_used,
    character_schema,
    list_characters,
    load_character,
    with_placed_assets,
)
from tests.conftest import REPO

SHA = "0" * 64


def asset(file: str, url: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"file": file, "url": url or f"https://assets.test/{file}", "sha256": SHA, "size": 10, **extra}


def pack(**fields: Any) -> CharacterProfile:
    return CharacterProfile.model_validate({"name": "Ava", **fields})


def test_a_full_pack_maps_to_conventional_parameter_defaults() -> None:
    profile = pack(
        trigger_words=["ava"],
        loras=[asset("ava.safetensors", strength_model=0.8, strength_clip=0.6, trigger_words=["freckles", "ava"])],
        reference_images=[asset("front.png"), asset("side.png", "s3://bucket-a/ava/side.png")],
        voice={"sample": asset("ava.wav", "${RELAY_ASSET_BASE_URL}/ava/ava.wav"), "transcript": "Hello there."},
        defaults={"lora_strength": 0.5, "cfg": 6},
    )
    assert profile.param_defaults() == {
        "trigger_words": "ava, freckles",
        "trigger_word": "ava",  # the first: what a LoRA training learns
        "lora": "ava.safetensors",
        "lora_strength": 0.5,  # explicit defaults win
        "lora_strength_clip": 0.6,
        "reference_image": "front.png",
        "voice_sample": "ava.wav",
        "voice_transcript": "Hello there.",
        "cfg": 6,
    }
    assert [(e.kind, e.path) for e in profile.assets()] == [
        (AssetKind.LORA, "loras[0]"),
        (AssetKind.REFERENCE_IMAGE, "reference_images[0]"),
        (AssetKind.REFERENCE_IMAGE, "reference_images[1]"),
        (AssetKind.VOICE_SAMPLE, "voice.sample"),
    ]


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"loras": [asset("a.safetensors", "http://plain.test/a")]}, ("loras", 0, "url"), "must be an https:// URL"),
        ({"loras": [asset("a.safetensors", "${RELAY_ASSET_BASE_URL}/../a")]}, ("loras", 0, "url"), "'..'"),
        ({"loras": [{**asset("a.safetensors"), "sha256": "abc"}]}, ("loras", 0, "sha256"), "pattern"),
        ({"loras": [{**asset("a.safetensors"), "size": 0}]}, ("loras", 0, "size"), "greater than 0"),
        ({"reference_images": [asset("../x.png")]}, ("reference_images", 0, "file"), "pattern"),
        ({"loras": [{"file": "a.safetensors"}]}, ("loras", 0, "url"), "Field required"),
    ],
)
def test_asset_fields_are_checked(fields: dict[str, Any], where: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        pack(**fields)
    (error,) = [e for e in info.value.errors() if tuple(e["loc"])[: len(where)] == where]
    assert message in error["msg"]


def test_kinds_and_unique_names_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"reference_images\[0\].file 'a.wav': a reference_image must end in"):
        pack(reference_images=[asset("a.wav")])
    with pytest.raises(ValidationError, match=r"voice.sample.file 'a.png' is also reference_images\[0\]"):
        pack(reference_images=[asset("a.png")], voice={"sample": asset("a.png"), "transcript": "x"})


def test_asset_location_uses_the_base_only_where_the_manifest_asks() -> None:
    assert asset_location("https://h.test/a.png", None) == "https://h.test/a.png"
    assert asset_location("${RELAY_ASSET_BASE_URL}/ava/a.png", "s3://b/pre/") == "s3://b/pre/ava/a.png"
    with pytest.raises(AssetBaseMissing, match="RELAY_ASSET_BASE_URL"):
        asset_location("${RELAY_ASSET_BASE_URL}/ava/a.png", None)


def test_only_assets_the_graph_names_are_used_and_the_jobs_own_media_win() -> None:
    profile = pack(loras=[asset("ava.safetensors")], reference_images=[asset("front.png"), asset("side.png")])
    graph: dict[str, Any] = {
        "1": {"class_type": "LoraLoader", "inputs": {"lora_name": "ava.safetensors", "model": ["0", 0]}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "front.png"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "side.png"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo"}},
    }
    own = MediaBinding("face", ParamType.IMAGE, "side.png", True, (("3", "image"),))  # a job media item
    bound = BoundWorkflow(graph=graph, media=[own])
    used = assets_used(profile, bound)
    assert [e.asset.file for e in used] == ["ava.safetensors", "front.png"]
    placed = with_placed_assets(bound, {"ava.safetensors": "relay-assets/0000/ava.safetensors", "front.png": "j/f.png"})
    assert placed.graph["1"]["inputs"] == {"lora_name": "relay-assets/0000/ava.safetensors", "model": ["0", 0]}
    assert placed.graph["2"]["inputs"]["image"] == "j/f.png"
    assert placed.graph["3"]["inputs"]["image"] == "side.png"  # staging renames the job's own file
    assert graph["1"]["inputs"]["lora_name"] == "ava.safetensors"  # the bound graph is not changed


def test_a_trained_lora_is_registered_as_the_default() -> None:
    profile = pack(loras=[asset("v1.safetensors")])
    trained = CharacterLora.model_validate(asset("v2.safetensors", "s3://bucket-a/out/v2.safetensors"))
    updated = profile.with_lora(trained)
    assert [lora.file for lora in updated.loras] == ["v2.safetensors", "v1.safetensors"]
    assert updated.param_defaults()["lora"] == "v2.safetensors"
    appended = updated.with_lora(trained, default=False)
    assert [lora.file for lora in appended.loras] == ["v1.safetensors", "v2.safetensors"]


def test_the_schema_is_generated_and_the_library_packs_validate_against_it() -> None:
    schema = character_schema()
    assert schema["title"] == "character.json" and "loras" in schema["properties"]
    assert schema["additionalProperties"] is False
    library = REPO / "workflows"
    assert {"ava", "mira"} <= set(list_characters(library))
    for name in list_characters(library):
        profile = load_character(library, name)
        json.dumps(profile.model_dump(mode="json"))


def test_the_local_placeholders_match_what_the_library_packs_pin() -> None:
    assert pack_asset_problems(REPO / "workflows") == []
