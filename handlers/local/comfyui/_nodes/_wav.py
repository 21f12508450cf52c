"""WAV (RIFF PCM) in and out with the standard library: LoadAudio reads it, and sample voices are written as it."""

from __future__ import annotations

import array
import io
import sys
import wave
from collections.abc import Sequence

__all__ = ["decode_wav", "encode_wav"]


def decode_wav(data: bytes) -> tuple[tuple[array.array[int], ...], int]:
    """One ``array('h')`` of 16-bit samples per channel, and the sample rate. 8/24/32-bit PCM is rescaled to 16."""
    try:
        with wave.open(io.BytesIO(data)) as reader:
            channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise RuntimeError(f"Could not decode the audio file: {exc}") from exc
    if width == 1:  # unsigned 8-bit
        samples = array.array("h", ((b - 128) << 8 for b in raw))
    elif width == 2:
        samples = array.array("h", raw)
        if sys.byteorder == "big":
            samples.byteswap()
    else:  # little-endian signed 24/32-bit: keep the top 16 bits
        samples = array.array(
            "h",
            (int.from_bytes(raw[i + width - 2 : i + width], "little", signed=True) for i in range(0, len(raw), width)),
        )
    return tuple(samples[c::channels] for c in range(channels)), rate


def encode_wav(channels: Sequence[array.array[int]], rate: int) -> bytes:
    """16-bit PCM WAV of the given channels (all the same length)."""
    interleaved = array.array("h", bytes(2 * len(channels[0]) * len(channels)))
    for index, channel in enumerate(channels):
        interleaved[index :: len(channels)] = channel
    if sys.byteorder == "big":
        interleaved.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(len(channels))
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(interleaved.tobytes())
    return out.getvalue()
