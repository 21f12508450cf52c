"""Long speech for F5-TTS: the text cut with :func:`chunk_text` (whole sentences, never mid-word), each chunk
generated on its own and the audio joined, in one node and one model load.

niknah/ComfyUI-F5-TTS splits its ``speech`` before every voice tag (``{name}``), generates each piece with the
named voice (``main``: the sample given to the node; untagged text uses it too), reports one ``progress`` per
piece and concatenates the audio. So the chunks are joined with ``{main}`` tags: the first stays untagged, which
keeps the pack's progress total equal to the number of chunks.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from handlers.workflow._tts_text import chunk_text

__all__ = ["SPEECH_CHUNK_CHARS", "SPEECH_NODES", "chunked_speech", "split_speech"]

#: The most characters one chunk holds: F5-TTS speaks about 15 characters a second, and a chunk plus the voice
#: sample should stay under its ~25 s context.
SPEECH_CHUNK_CHARS: Final = 200
#: Node classes whose text input splits at voice tags, and that input.
SPEECH_NODES: Final = {"F5TTSAudioInputs": "speech"}
_TAG: Final = "{main}"


def chunked_speech(text: str, max_chars: int = SPEECH_CHUNK_CHARS) -> str:
    """``text`` as chunks of at most ``max_chars`` joined by ``{main}`` voice tags (unchanged when it fits one).
    Braces in the text are dropped: the pack would read them as voice tags."""
    clean = text.replace("{", "").replace("}", "")
    chunks = chunk_text(clean, max_chars)
    if len(chunks) <= 1:
        return clean
    return f" {_TAG} ".join(chunks)


def split_speech(graph: Mapping[str, Any], max_chars: int = SPEECH_CHUNK_CHARS) -> dict[str, Any]:
    """A copy of ``graph`` whose F5-TTS nodes speak their text chunk by chunk (see :func:`chunked_speech`); text
    that arrives by a link, or already fits one chunk, is left as it is."""
    result = copy.deepcopy(dict(graph))
    for node in result.values():
        name = SPEECH_NODES.get(node.get("class_type", "")) if isinstance(node, dict) else None
        inputs = node.get("inputs") if name is not None else None
        if isinstance(inputs, dict) and isinstance(inputs.get(name), str):
            inputs[name] = chunked_speech(inputs[name], max_chars)
    return result
