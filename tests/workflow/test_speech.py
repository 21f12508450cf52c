"""Long speech is cut into chunks joined by F5-TTS voice tags; the graph edit and the resolve path apply it."""

from __future__ import annotations

import re
from typing import Any

from handlers.workflow import (
    SPEECH_CHUNK_CHARS,
    chunk_text,
    chunked_speech,
    default_workflows_dir,
    load_template,
    resolve_template,
    split_speech,
)

LONG = " ".join(f"This is sentence number {n} of a long news bulletin, read slowly and clearly." for n in range(12))


def test_short_text_is_left_whole() -> None:
    assert chunked_speech("Hello there.") == "Hello there."
    assert chunked_speech("Hello {there}.") == "Hello there."  # braces would be read as a voice tag


def test_long_text_becomes_tagged_chunks_of_whole_sentences() -> None:
    speech = chunked_speech(LONG)
    pieces = re.split(r"(?=\{[^\}]+\})", speech)  # how the pack splits it
    assert not pieces[0].startswith("{") and all(p.startswith("{main} ") for p in pieces[1:])
    texts = [p.removeprefix("{main} ").strip() for p in pieces]
    assert texts == chunk_text(LONG, SPEECH_CHUNK_CHARS)
    assert all(len(t) <= SPEECH_CHUNK_CHARS and t.endswith(".") for t in texts)
    assert " ".join(texts) == LONG


def test_split_speech_edits_only_tts_nodes_with_literal_text() -> None:
    graph: dict[str, Any] = {
        "1": {"class_type": "F5TTSAudioInputs", "inputs": {"speech": LONG}},
        "2": {"class_type": "F5TTSAudioInputs", "inputs": {"speech": ["9", 0]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": LONG}},
    }
    edited = split_speech(graph)
    assert edited["1"]["inputs"]["speech"].count("{main}") == len(chunk_text(LONG, SPEECH_CHUNK_CHARS)) - 1
    assert edited["2"] == graph["2"] and edited["3"] == graph["3"]
    assert graph["1"]["inputs"]["speech"] == LONG  # the caller's graph is untouched


def test_the_f5_template_speaks_long_text_in_chunks() -> None:
    template = load_template(default_workflows_dir(), "audio/f5-tts")
    params = {"text": LONG + " It costs $5.", "voice_sample": "voice.wav", "voice_transcript": "Hi."}
    bound = resolve_template(template, params, {}, media_names={"voice.wav"})
    speech = bound.graph["2"]["inputs"]["speech"]
    assert speech.count("{main}") >= 2 and speech.endswith("It costs five dollars.")
