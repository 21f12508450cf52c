"""Captions of a LoRA training dataset: ComfyUI's ``LoadImageTextSetFromFolderNode`` reads ``<image>.txt`` beside each
image, so the trigger word has to be in the caption files themselves; the worker writes them through this when it
stages a dataset."""

from __future__ import annotations

import re

__all__ = ["caption_with_trigger"]


def caption_with_trigger(caption: str, trigger: str) -> str:
    """``caption`` led by ``trigger`` (``"ohwx, a woman smiling"``), unless the trigger is already a whole word
    of it; an empty caption becomes the trigger alone."""
    caption = " ".join(caption.split())
    trigger = trigger.strip()
    if not trigger:
        return caption
    if re.search(rf"(?<![\w]){re.escape(trigger)}(?![\w])", caption):
        return caption
    return f"{trigger}, {caption}" if caption else trigger
