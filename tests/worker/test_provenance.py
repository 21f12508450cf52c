"""Provenance from what the worker holds: bound workflow, /object_info, /system_stats and the image's lock."""

from __future__ import annotations

import random
from pathlib import Path

from handlers.contract import JobInput
from handlers.image import load_lock
from handlers.worker._provenance import build_provenance, read_lock
from handlers.workflow import Catalogue, load_template, resolve_template
from tests.conftest import REPO

LOCK = REPO / "worker_image" / "lock.json"
STATS = {"system": {"comfyui_version": "0.3.64", "python_version": "3.12.3", "pytorch_version": "2.9.0"}}


def _catalogue() -> Catalogue:
    def node(module: str) -> dict[str, object]:
        return {"input": {"required": {}}, "output": [], "python_module": module}

    return Catalogue(
        {
            "KSampler": node("nodes"),
            "IPAdapterFaceID": node("custom_nodes.ComfyUI_IPAdapter_plus"),
            "IPAdapterUnifiedLoaderFaceID": node("custom_nodes.ComfyUI_IPAdapter_plus"),
            "Mystery": node("custom_nodes.unpinned-pack@1.2"),
        }
    )


def test_a_template_job_records_params_models_loras_versions_and_nodes() -> None:
    job = JobInput.model_validate(
        {
            "template": "image/sdxl-basic",
            "params": {"prompt": "a fox", "loras": [{"name": "ava_sdxl_v1.safetensors", "strength": 0.7}]},
            "labels": {"project": "p1"},
        }
    )
    template = load_template(REPO / "workflows", "image/sdxl-basic")
    bound = resolve_template(template, job.params, job.overrides, rng=random.Random(1))
    graph = {**bound.graph, "90": {"class_type": "IPAdapterFaceID", "inputs": {}}}
    graph["91"] = {"class_type": "Mystery", "inputs": {"ckpt": "nowhere/unknown.safetensors"}}
    bound = type(bound)(graph=graph, params=bound.params, seeds=bound.seeds)
    lock = load_lock(LOCK)
    made = build_provenance(job, bound, _catalogue(), system_stats=STATS, lock=lock, lock_path=LOCK)
    assert (made.template, made.workflow, made.labels) == ("image/sdxl-basic", "template", {"project": "p1"})
    assert made.params["prompt"] == "a fox" and isinstance(made.params["seed"], int)  # the random seed, resolved
    assert made.params["width"] == 1024  # a default, as bound
    assert made.edits == {"loras": [{"name": "ava_sdxl_v1.safetensors", "strength": 0.7}]}
    checkpoint = next(m for m in made.models if m.input == "ckpt_name")
    pinned = next(m for m in lock.models if m.file == "sd_xl_base_1.0.safetensors")
    assert (checkpoint.folder, checkpoint.sha256) == ("checkpoints", pinned.sha256)
    unknown = next(m for m in made.models if m.node_id == "91")
    assert (unknown.folder, unknown.sha256) == (None, None)
    assert [(lora.name, lora.strength_model, lora.strength_clip) for lora in made.loras] == [
        ("ava_sdxl_v1.safetensors", 0.7, 0.7)
    ]
    assert (made.comfyui.version, made.comfyui.python, made.comfyui.commit) == ("0.3.64", "3.12.3", lock.comfyui.commit)
    ipadapter, mystery = made.custom_nodes
    assert (ipadapter.name, ipadapter.classes) == ("ComfyUI_IPAdapter_plus", ["IPAdapterFaceID"])
    assert ipadapter.commit == next(n.commit for n in lock.custom_nodes if n.name == "ComfyUI_IPAdapter_plus")
    assert (mystery.name, mystery.commit) == ("unpinned-pack", None)
    assert made.lock == str(LOCK) and made.relay_version and made.graph_sha256 and len(made.graph_sha256) == 64


def test_without_a_lock_it_says_less_and_the_digest_names_the_work(tmp_path: Path) -> None:
    assert read_lock(None) is None
    assert read_lock(tmp_path / "missing.json") is None
    job = JobInput.model_validate({"workflow": {"1": {"class_type": "KSampler", "inputs": {"seed": 1}}}})
    template = load_template(REPO / "workflows", "image/sdxl-basic")
    bound = resolve_template(template, {"prompt": "a", "seed": 1}, {})
    first = build_provenance(job, bound, _catalogue())
    again = build_provenance(job, resolve_template(template, {"prompt": "a", "seed": 1}, {}), _catalogue())
    assert first.workflow == "api" and first.comfyui.commit is None and first.lock is None
    assert all(m.sha256 is None for m in first.models)
    assert first.graph_sha256 == again.graph_sha256
