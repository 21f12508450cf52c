"""A minimal FLAC encoder for 16-bit PCM, so SaveAudio writes real ``.flac`` files with no native library.

No prediction: a block whose samples are all equal becomes a CONSTANT subframe (silence costs a few bytes), any
other block is stored VERBATIM. Every decoder reads both; the file is only as large as a WAV when it is not silent.
Vorbis comments carry the prompt and workflow, as ComfyUI's SaveAudio writes them.
"""

from __future__ import annotations

import array
import hashlib
import struct
import sys
from collections.abc import Sequence

__all__ = ["encode_flac"]

_BLOCK = 4096
_RATE_CODES = {
    88200: 1,
    176400: 2,
    192000: 3,
    8000: 4,
    16000: 5,
    22050: 6,
    24000: 7,
    32000: 8,
    44100: 9,
    48000: 10,
    96000: 11,
}


def _crc_table(poly: int, width: int) -> list[int]:
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & top else (crc << 1)
        table.append(crc & mask)
    return table


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's frame number coding (UTF-8 extended to 36 bits)."""
    if n < 0x80:
        return bytes((n,))
    payload = []
    while True:
        payload.append(0x80 | (n & 0x3F))
        n >>= 6
        room = 6 - len(payload)  # bits left for the lead byte's payload
        if n < (1 << room):
            lead = (0xFF << (7 - len(payload))) & 0xFF
            return bytes((lead | n, *reversed(payload)))


def _streaminfo(rate: int, channels: int, total: int, md5: bytes) -> bytes:
    packed = (rate << 44) | ((channels - 1) << 41) | (15 << 36) | total
    return struct.pack(">HH", _BLOCK, _BLOCK) + b"\0" * 6 + packed.to_bytes(8, "big") + md5


def _vorbis_comment(comments: dict[str, str]) -> bytes:
    vendor = b"comfy-relay emulator"
    out = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
    for key, value in comments.items():
        entry = f"{key}={value}".encode()
        out += struct.pack("<I", len(entry)) + entry
    return out


def _block_header(last: bool, kind: int, body: bytes) -> bytes:
    return bytes(((0x80 if last else 0) | kind,)) + len(body).to_bytes(3, "big")


def _big_endian(samples: array.array[int]) -> bytes:
    block = array.array("h", samples)
    if sys.byteorder == "little":
        block.byteswap()
    return block.tobytes()


def _frame(number: int, rate: int, channels: Sequence[array.array[int]], start: int, size: int) -> bytes:
    header = bytearray(b"\xff\xf8")
    header.append((0b0111 << 4) | _RATE_CODES.get(rate, 0))  # block size: 16 bits at the end of the header
    header.append(((len(channels) - 1) << 4) | (0b100 << 1))  # independent channels, 16 bits per sample
    header += _utf8_number(number)
    header += struct.pack(">H", size - 1)
    header.append(_crc8(bytes(header)))
    frame = header
    for channel in channels:
        block = channel[start : start + size]
        first = block[0]
        if block.count(first) == size:
            frame += b"\x00" + struct.pack(">h", first)  # CONSTANT subframe
        else:
            frame += b"\x02" + _big_endian(block)  # VERBATIM subframe
    frame += struct.pack(">H", _crc16(bytes(frame)))
    return bytes(frame)


def _md5(channels: Sequence[array.array[int]], total: int) -> bytes:
    """STREAMINFO's MD5: of the interleaved little-endian samples."""
    interleaved = array.array("h", bytes(2 * total * len(channels)))
    for index, channel in enumerate(channels):
        interleaved[index :: len(channels)] = channel
    if sys.byteorder == "big":
        interleaved.byteswap()
    return hashlib.md5(interleaved.tobytes()).digest()  # noqa: S324 - the format's checksum


def encode_flac(
    channels: Sequence[array.array[int]], sample_rate: int, comments: dict[str, str] | None = None
) -> bytes:
    """A complete FLAC file of 1-8 channels of signed 16-bit samples (each channel the same length)."""
    if not 1 <= len(channels) <= 8:
        raise ValueError(f"FLAC holds 1 to 8 channels, not {len(channels)}")
    if not 1 <= sample_rate < (1 << 20):
        raise ValueError(f"FLAC cannot store a sample rate of {sample_rate}")
    total = len(channels[0])
    if any(len(c) != total for c in channels):
        raise ValueError("every channel must have the same number of samples")
    info = _streaminfo(sample_rate, len(channels), total, _md5(channels, total))
    comment = _vorbis_comment(comments or {})
    out = bytearray(b"fLaC")
    out += _block_header(False, 0, info) + info
    out += _block_header(True, 4, comment) + comment
    for number, start in enumerate(range(0, total, _BLOCK)):
        out += _frame(number, sample_rate, channels, start, min(_BLOCK, total - start))
    return bytes(out)
