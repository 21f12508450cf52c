"""Custom node pack niknah/ComfyUI-F5-TTS (commit 4f091769, ``F5TTS.py``): F5TTSAudioInputs, simulated.

Like the real node, the speech is split at voice tags (``{name}``), one ``progress`` is reported per generated chunk,
and each chunk lasts as long as F5-TTS would make it: the voice sample's length scaled by the ratio of the text's
UTF-8 length to the transcript's, then stretched by ``speed``. The audio is 24 kHz mono (the Vocos vocoder's rate):
a deterministic tone per word, pitched from the voice sample, so different voices and texts sound different.
"""

from __future__ import annotations

import array
import asyncio
import math
import random
import re
from typing import Any

from .._node import Folders, Node, NodeContext, NodeOutput
from ._loaders import model_list
from ._types import Audio, digest

__all__ = ["F5TTSAudioInputs", "f5_model_names", "split_voices"]

_MODULE = "custom_nodes.ComfyUI-F5-TTS"
_RATE = 24000
_BUILT_IN = ["F5v1", "F5", "F5-DE", "F5-ES", "F5-FR", "F5-HI", "F5-IT", "F5-JP", "F5-TH", "E2"]
#: The *.yaml configs of the pack's F5-TTS submodule (commit 9ae46c83).
_MODEL_TYPES = ["E2TTS_Base", "E2TTS_Small", "F5TTS_Base", "F5TTS_Small", "F5TTS_v1_Base"]
_VOICE_TAG = re.compile(r"\{([^\}]+)\}")
#: F5-TTS uses at most this much of the voice sample.
_MAX_REFERENCE_S = 15.0


def f5_model_names(folders: Folders) -> list[str]:
    """The built-in models, then ``model://<file>`` for each model in ``checkpoints/F5-TTS`` with a same-named .txt
    vocabulary beside it."""
    folder = folders.models / "checkpoints" / "F5-TTS"
    local = [
        f"model://{name}"
        for name in model_list(folders, "checkpoints/F5-TTS")
        if "/" not in name and (folder / name).with_suffix(".txt").is_file()
    ]
    return [*_BUILT_IN, *local]


def split_voices(speech: str) -> list[str]:
    """The pack's chunks: the speech split before every voice tag (``{main} Hello {narrator} Hi``)."""
    return re.split(r"(?=\{[^\}]+\})", speech)


def _speak(text: str, seconds: float, pitch: float, seed: int) -> array.array[int]:
    """A tone burst per word over ``seconds`` (with short pauses), pitch varied per word."""
    words = text.split() or [text]
    total = max(1, round(seconds * _RATE))
    samples = array.array("h", bytes(2 * total))
    per_word = total // len(words)
    rng = random.Random(digest("f5", seed, text))  # noqa: S311 - a waveform, not a secret
    for index, _word in enumerate(words):
        start = index * per_word
        length = int(per_word * 0.8)
        frequency = pitch * rng.uniform(0.85, 1.2)
        step = 2 * math.pi * frequency / _RATE
        for n in range(length):
            envelope = math.sin(math.pi * n / length)
            samples[start + n] = int(9000 * envelope * math.sin(step * n))
    return samples


class F5TTSAudioInputs(Node):
    CLASS_TYPE = "F5TTSAudioInputs"
    DISPLAY_NAME = "F5-TTS Audio from input"
    DESCRIPTION = "From one audio input.  (Does not support multi voice)"
    CATEGORY = "audio"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("AUDIO",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "sample_audio": ["AUDIO", {"tooltip": "5-15 seconds of audio"}],
                "sample_text": ["STRING", {"default": "Text of sample_audio"}],
                "speech": ["STRING", {"multiline": True, "default": "This is what I want to say"}],
                "seed": [
                    "INT",
                    {"display": "number", "step": 1, "default": 1, "min": -1, "tooltip": "Seed. -1 = random"},
                ],
                "model": [f5_model_names(folders), {"default": "F5v1"}],
                "vocoder": [
                    ["auto", "vocos", "bigvgan"],
                    {"tooltip": "Auto will be set by model_type. Most models are usually vocos.", "default": "auto"},
                ],
                "speed": ["FLOAT", {"default": 1.0, "step": 0.01, "tooltip": "Speed. >1.0 slower. <1.0 faster"}],
                "model_type": [list(_MODEL_TYPES), {"tooltip": "Type of model", "default": "F5TTS_Base"}],
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        sample_audio: Audio,
        sample_text: str,
        speech: str,
        seed: int,
        model: str,
        speed: float,
        **_: Any,
    ) -> NodeOutput:
        if sample_audio.frames == 0:
            raise RuntimeError("No audio input")
        reference_s = min(_MAX_REFERENCE_S, sample_audio.frames / sample_audio.sample_rate)
        reference_len = max(1, len(sample_text.encode()))
        # The voice's pitch comes from the sample itself: another voice, another sound.
        pitch = 110 + digest("voice", bytes(sample_audio.channels[0][:4096])) % 160
        if seed < 0:
            seed = random.SystemRandom().randrange(2**32)
        chunks = [_VOICE_TAG.sub("", c).strip() for c in split_voices(speech)]
        pieces: list[array.array[int]] = []
        done = 0
        for text in chunks:
            if not text:
                continue  # the pack skips empty chunks without advancing its progress bar
            seconds = reference_s * len(text.encode()) / reference_len * speed
            pieces.append(await asyncio.to_thread(_speak, text, seconds, pitch, digest(seed, model)))
            done += 1
            await ctx.progress(done, len(chunks))
        if not pieces:
            # The real node then fails on an undefined final_wave.
            raise UnboundLocalError("cannot access local variable 'final_wave' where it is not associated with a value")
        joined = array.array("h")
        for piece in pieces:
            joined.extend(piece)
        return NodeOutput((Audio((joined,), _RATE),))
