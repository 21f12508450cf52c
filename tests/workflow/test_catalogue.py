"""The typed view over /object_info: both combo formats, widget semantics, outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handlers.workflow import Catalogue

_INT = "INT"
# A hand-made catalogue in the shapes ComfyUI 0.3.64 serves (V1 list combos and V3 "COMBO" + options side by side).
CATALOGUE: dict[str, Any] = {
    "EmptyImage": {
        "input": {
            "required": {
                "width": [_INT, {"default": 512, "min": 1, "max": 16384, "step": 1}],
                "height": [_INT, {"default": 512, "min": 1, "max": 16384, "step": 1}],
                "batch_size": [_INT, {"default": 1, "min": 1, "max": 4096}],
                "color": [_INT, {"default": 0, "min": 0, "max": 16777215, "display": "color"}],
            }
        },
        "input_order": {"required": ["width", "height", "batch_size", "color"]},
        "output": ["IMAGE"],
        "output_name": ["IMAGE"],
        "output_node": False,
        "display_name": "EmptyImage",
    },
    "KSampler": {
        "input": {
            "required": {
                "model": ["MODEL", {}],
                "seed": [_INT, {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": True}],
                "steps": [_INT, {"default": 20, "min": 1, "max": 10000}],
                "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
                "sampler_name": [["euler", "dpmpp_2m"], {}],
                "scheduler": ["COMBO", {"options": ["normal", "karras"], "multiselect": False}],
                "positive": ["CONDITIONING", {}],
                "negative": ["CONDITIONING", {}],
                "latent_image": ["LATENT", {}],
                "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
            }
        },
        "input_order": {
            "required": [
                "model",
                "seed",
                "steps",
                "cfg",
                "sampler_name",
                "scheduler",
                "positive",
                "negative",
                "latent_image",
                "denoise",
            ]
        },
        "output": ["LATENT"],
        "output_name": ["LATENT"],
        "output_node": False,
        "display_name": "KSampler",
    },
    "RandomNoise": {
        "input": {"required": {"noise_seed": [_INT, {"default": 0, "min": 0, "max": 18446744073709551615}]}},
        "input_order": {"required": ["noise_seed"]},
        "output": ["NOISE"],
        "output_name": ["NOISE"],
        "output_node": False,
        "display_name": "RandomNoise",
    },
    "CheckpointLoaderSimple": {
        "input": {"required": {"ckpt_name": [["a.safetensors", "b.safetensors"], {}]}},
        "input_order": {"required": ["ckpt_name"]},
        "output": ["MODEL", "CLIP", "VAE"],
        "output_name": ["MODEL", "CLIP", "VAE"],
        "output_node": False,
        "display_name": "Load Checkpoint",
    },
    "CLIPTextEncode": {
        "input": {
            "required": {
                "text": ["STRING", {"multiline": True, "dynamicPrompts": True}],
                "clip": ["CLIP", {}],
            }
        },
        "input_order": {"required": ["text", "clip"]},
        "output": ["CONDITIONING"],
        "output_name": ["CONDITIONING"],
        "output_node": False,
        "display_name": "CLIP Text Encode (Prompt)",
    },
    "EmptyLatentImage": {
        "input": {
            "required": {
                "width": [_INT, {"default": 512, "min": 16, "max": 16384, "step": 8}],
                "height": [_INT, {"default": 512, "min": 16, "max": 16384, "step": 8}],
                "batch_size": [_INT, {"default": 1, "min": 1, "max": 4096}],
            }
        },
        "input_order": {"required": ["width", "height", "batch_size"]},
        "output": ["LATENT"],
        "output_name": ["LATENT"],
        "output_node": False,
        "display_name": "Empty Latent Image",
    },
    "VAEDecode": {
        "input": {"required": {"samples": ["LATENT", {}], "vae": ["VAE", {}]}},
        "input_order": {"required": ["samples", "vae"]},
        "output": ["IMAGE"],
        "output_name": ["IMAGE"],
        "output_node": False,
        "display_name": "VAE Decode",
    },
    "SaveImage": {
        "input": {
            "required": {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        },
        "input_order": {"required": ["images", "filename_prefix"], "hidden": ["prompt", "extra_pnginfo"]},
        "output": [],
        "output_name": [],
        "output_node": True,
        "display_name": "Save Image",
    },
    "PreviewImage": {
        "input": {"required": {"images": ["IMAGE", {}]}},
        "input_order": {"required": ["images"]},
        "output": [],
        "output_name": [],
        "output_node": True,
        "display_name": "Preview Image",
    },
    "PreviewAny": {
        "input": {"required": {"source": ["*", {}]}},
        "input_order": {"required": ["source"]},
        "output": [],
        "output_name": [],
        "output_node": True,
        "display_name": "Preview Any",
    },
    "LoadImage": {
        "input": {"required": {"image": [["a.png", "b.png"], {"image_upload": True}]}},
        "input_order": {"required": ["image"]},
        "output": ["IMAGE", "MASK"],
        "output_name": ["IMAGE", "MASK"],
        "output_node": False,
        "display_name": "Load Image",
    },
    "ImageInvert": {
        "input": {"required": {"image": ["IMAGE", {}]}},
        "input_order": {"required": ["image"]},
        "output": ["IMAGE"],
        "output_name": ["IMAGE"],
        "output_node": False,
        "display_name": "Invert Image",
    },
    "ImageToMask": {
        "input": {"required": {"image": ["IMAGE", {}], "channel": [["red", "green"], {}]}},
        "input_order": {"required": ["image", "channel"]},
        "output": ["MASK"],
        "output_name": ["MASK"],
        "output_node": False,
        "display_name": "Convert Image to Mask",
    },
    "MaskPreview": {
        "input": {"required": {"mask": ["MASK", {}]}},
        "input_order": {"required": ["mask"]},
        "output": [],
        "output_name": [],
        "output_node": True,
        "display_name": "Preview Mask",
    },
    "ImageBlend": {
        "input": {
            "required": {
                "image1": ["IMAGE", {}],
                "image2": ["IMAGE", {}],
                "blend_factor": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}],
            }
        },
        "input_order": {"required": ["image1", "image2", "blend_factor"]},
        "output": ["IMAGE"],
        "output_name": ["IMAGE"],
        "output_node": False,
        "display_name": "Image Blend",
    },
    "IntConstant": {
        "input": {"required": {"value": [_INT, {"default": 0, "min": 0, "max": 100}]}},
        "input_order": {"required": ["value"]},
        "output": [_INT],
        "output_name": [_INT],
        "output_node": False,
        "display_name": "Int",
    },
    "StringJoin": {
        "input": {
            "required": {"a": ["STRING", {"forceInput": True}], "sep": ["STRING", {"default": " "}]},
            "optional": {"b": ["STRING", {"default": ""}]},
        },
        "input_order": {"required": ["a", "sep"], "optional": ["b"]},
        "output": ["STRING"],
        "output_name": ["STRING"],
        "output_node": False,
        "display_name": "String Join",
    },
    "TagPicker": {
        "input": {"required": {"tags": ["COMBO", {"options": ["x", "y", "z"], "multiselect": True}]}},
        "input_order": {"required": ["tags"]},
        "output": ["STRING"],
        "output_name": ["STRING"],
        "output_node": False,
        "display_name": "Tag Picker",
    },
    "ImageOrMask": {
        "input": {"required": {"pixels": ["IMAGE,MASK", {}]}},
        "input_order": {"required": ["pixels"]},
        "output": ["IMAGE"],
        "output_name": ["IMAGE"],
        "output_node": False,
        "display_name": "Image or Mask",
    },
}


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue(CATALOGUE)


def test_v1_and_v3_combos_read_the_same(catalogue: Catalogue) -> None:
    sampler = catalogue["KSampler"]
    v1, v3 = sampler.input("sampler_name"), sampler.input("scheduler")
    assert v1 is not None and v3 is not None
    assert (v1.type, v1.options) == ("COMBO", ("euler", "dpmpp_2m"))
    assert (v3.type, v3.options) == ("COMBO", ("normal", "karras"))
    assert v1.is_widget and v3.is_widget


def test_widgets_follow_input_order_and_skip_sockets_hidden_and_force_input(catalogue: Catalogue) -> None:
    assert [s.name for s in catalogue["KSampler"].widget_inputs] == [
        "seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "denoise",
    ]
    assert [s.name for s in catalogue["SaveImage"].widget_inputs] == ["filename_prefix"]
    assert [s.name for s in catalogue["StringJoin"].widget_inputs] == ["sep", "b"]


def test_control_after_generate_by_flag_or_seed_name(catalogue: Catalogue) -> None:
    seed = catalogue["KSampler"].input("seed")
    noise_seed = catalogue["RandomNoise"].input("noise_seed")
    steps = catalogue["KSampler"].input("steps")
    assert seed is not None and noise_seed is not None and steps is not None
    assert seed.has_control_after_generate and seed.unserialised_widgets == 1
    assert noise_seed.has_control_after_generate  # legacy rule: an INT named noise_seed
    assert not steps.has_control_after_generate
    assert catalogue["KSampler"].saved_widget_count == 7  # six widgets plus the control


def test_image_upload_adds_one_saved_widget(catalogue: Catalogue) -> None:
    image = catalogue["LoadImage"].input("image")
    assert image is not None and image.has_upload_widget and image.unserialised_widgets == 1
    assert catalogue["LoadImage"].saved_widget_count == 2


def test_outputs_and_output_node(catalogue: Catalogue) -> None:
    assert catalogue["CheckpointLoaderSimple"].output_types == ("MODEL", "CLIP", "VAE")
    assert catalogue["SaveImage"].output_node and not catalogue["VAEDecode"].output_node
    assert catalogue["CheckpointLoaderSimple"].display_name == "Load Checkpoint"


def test_bounds_and_mapping_protocol(catalogue: Catalogue) -> None:
    width = catalogue["EmptyLatentImage"].input("width")
    assert width is not None and (width.minimum, width.maximum, width.step) == (16, 16384, 8)
    assert "KSampler" in catalogue and "Nope" not in catalogue and 3 not in catalogue
    assert len(catalogue) == len(CATALOGUE) and set(catalogue) == set(CATALOGUE)
    with pytest.raises(KeyError):
        catalogue["Nope"]


def test_malformed_entry_names_the_class() -> None:
    broken = Catalogue({"Bad": {"input": {"required": {"x": 5}}, "output": []}})
    with pytest.raises(ValueError, match=r"'Bad'.*'x'"):
        broken["Bad"]


def test_real_catalogue_parses_every_class(object_info_path: Path) -> None:
    catalogue = Catalogue(json.loads(object_info_path.read_text()))
    classes = [catalogue[name] for name in catalogue]
    assert len(classes) == 496
    load_image = catalogue["LoadImage"].input("image")
    assert load_image is not None and load_image.has_upload_widget
    v3 = catalogue["ImageBlend"].input("blend_mode")  # a V3 "COMBO" + options entry
    assert v3 is not None and v3.options is not None and "multiply" in v3.options
    assert sum(1 for c in classes if c.output_node) == 34


def test_package_exports_catalogue_conversion_and_validation() -> None:
    from handlers import workflow

    mine = {
        "Catalogue",
        "ConversionError",
        "InputSpec",
        "NodeClass",
        "ValidationIssue",
        "ValidationReport",
        "ui_to_api",
        "validate",
    }
    assert mine <= set(workflow.__all__)
    assert all(getattr(workflow, name).__module__.startswith("handlers.workflow._") for name in mine)
