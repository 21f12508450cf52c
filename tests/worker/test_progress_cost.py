"""Progress weighted by expected cost: a 100-step sampler dominates the bar, so 16/100 steps reads as about 16%,
not 59% (as counting nodes did), and measured node times from earlier runs of a template take over."""

from __future__ import annotations

from typing import Any

from handlers.worker._progress_cost import CostModel, default_cost
from handlers.worker.comfy import GraphInfo, ProgressUpdate, PromptFollower

PROMPT = "p-1"


def sdxl_like(steps: int = 100) -> dict[str, Any]:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
                       "steps": steps, "seed": 1, "cfg": 7, "sampler_name": "euler", "scheduler": "normal",
                       "denoise": 1},
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
    }  # fmt: skip


def run_to_step(weights: dict[str, float] | None, step: int, steps: int = 100) -> float:
    graph = sdxl_like(steps)
    follower = PromptFollower(PROMPT, GraphInfo.from_graph(graph, weights=weights))
    for node in ("4", "6", "7", "5", "3"):
        follower.feed_message({"type": "executing", "data": {"node": node, "prompt_id": PROMPT}})
    updates = follower.feed_message(
        {"type": "progress", "data": {"value": step, "max": steps, "node": "3", "prompt_id": PROMPT}}
    )
    return [u for u in updates if isinstance(u, ProgressUpdate)][-1].percent


def test_counting_nodes_was_what_made_the_bar_jump() -> None:
    assert run_to_step(None, 16) == 59.4  # 4 of 7 nodes done + 16% of one: the complaint in the issue


def test_the_sampler_dominates_a_weighted_bar() -> None:
    weights = CostModel().weights(sdxl_like())
    at_16 = run_to_step(weights, 16)
    at_100 = run_to_step(weights, 100)
    assert 14 <= at_16 <= 22
    assert at_100 >= 95  # sampling done: only the decode and the save remain
    assert default_cost(sdxl_like()["3"]) == 100 * default_cost({"class_type": "KSampler", "inputs": {"steps": 1}})


def test_measured_times_of_a_template_replace_the_guesses() -> None:
    costs = CostModel()
    graph = sdxl_like(steps=20)
    assert costs.weights(graph, "ava/image/sdxl-basic")["4"] == default_cost(graph["4"])
    # On this worker, loading dominated (a cold model): the learned weights say so.
    costs.learn("ava/image/sdxl-basic", {"4": 6000, "6": 10, "7": 10, "5": 1, "3": 2000, "8": 300, "9": 40})
    learned = costs.weights(graph, "ava/image/sdxl-basic")
    assert learned["4"] == 6000 and learned["3"] == 2000
    costs.learn("ava/image/sdxl-basic", {"4": 0, "3": 2000})  # the model was cached: loading cost nothing
    assert costs.weights(graph, "ava/image/sdxl-basic")["4"] == 3000  # a moving average, not the last run alone
    assert costs.weights(graph, "image/other") == CostModel().weights(graph)  # other templates keep the guesses
    assert costs.weights(graph, None) == CostModel().weights(graph)
