"""Reading the recordings of a real ComfyUI, and normalising what differs between any two runs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

_TEMP_NAME = re.compile(r"ComfyUI_temp_[a-z]{5}_")
#: Save nodes number files after what the output folder already holds, and the recording server's was not empty.
_COUNTER = re.compile(r"_\d{5}_\.")


def load(transcripts_dir: Path, name: str) -> dict[str, Any]:
    path = transcripts_dir / f"{name}.json"
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def classes_in(request_json: dict[str, Any]) -> set[str]:
    prompt = request_json.get("prompt") or {}
    return {node["class_type"] for node in prompt.values() if isinstance(node, dict) and "class_type" in node}


def normalise(value: Any, prompt_id: str | None = None) -> Any:
    """Ids, timestamps, tracebacks, random temp-file prefixes and set-ordered lists made comparable."""
    value = copy.deepcopy(value)

    def walk(obj: Any, key: str | None = None) -> Any:
        if isinstance(obj, dict):
            return {("<id>" if prompt_id is not None and k == prompt_id else k): walk(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            items = [walk(v) for v in obj]
            if key in ("executed", "current_outputs"):
                return sorted(items, key=str)
            if key == "traceback":
                return ["<traceback>"] if items else []
            return items
        if key == "timestamp":
            return "<ts>"
        if key == "exception_message" and isinstance(obj, str):
            # Torch's allocator message ends with a newline; the emulated node's need not (the node's text, not
            # the protocol, is what differs).
            return obj.rstrip("\n")
        if isinstance(obj, str):
            if prompt_id is not None and obj == prompt_id:
                return "<id>"
            return _COUNTER.sub("_<n>_.", _TEMP_NAME.sub("ComfyUI_temp_<prefix>_", obj))
        return obj

    return walk(value)


def history_entry(history_json: dict[str, Any], prompt_id: str) -> dict[str, Any]:
    """A history entry normalised: the number and outputs_to_execute (set-ordered on the real server) too."""
    entry: dict[str, Any] = normalise(history_json[prompt_id], prompt_id)
    entry["prompt"][0] = "<number>"
    entry["prompt"][4] = sorted(entry["prompt"][4])
    return entry
