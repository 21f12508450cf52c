"""A minimal MP4 (ISO BMFF) muxer for one H.264 video track: ``ftyp``, ``mdat``, then ``moov``."""

from __future__ import annotations

import struct

from ._h264 import Bitstream

__all__ = ["mux_mp4"]

_MOVIE_TIMESCALE = 1000
_MEDIA_TIMESCALE = 90000
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


def _avc1(stream: Bitstream) -> bytes:
    sps, pps = stream.sps, stream.pps
    avcc = _box(
        b"avcC",
        bytes((1, sps[1], sps[2], sps[3], 0xFF, 0xE1)),  # 4-byte NAL lengths, one SPS
        struct.pack(">H", len(sps)),
        sps,
        bytes((1,)),
        struct.pack(">H", len(pps)),
        pps,
    )
    return _box(
        b"avc1",
        b"\0" * 6,
        struct.pack(">H", 1),  # data_reference_index
        b"\0" * 16,
        struct.pack(">HH", stream.width, stream.height),
        struct.pack(">II", 0x00480000, 0x00480000),  # 72 dpi
        b"\0" * 4,
        struct.pack(">H", 1),  # frame_count
        b"\0" * 32,  # compressorname
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )


def _sample_table(stream: Bitstream, delta: int, chunk_offset: int, sizes: list[int]) -> bytes:
    return _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), _avc1(stream)),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, len(sizes), delta)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(sizes), 1)),  # one chunk holds every sample
        _full_box(b"stsz", 0, 0, struct.pack(">II", 0, len(sizes)), struct.pack(f">{len(sizes)}I", *sizes)),
        _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)),
    )


def mux_mp4(stream: Bitstream, fps: float) -> bytes:
    """An MP4 file playing ``stream``'s frames at ``fps`` (every frame a sync sample)."""
    samples = [struct.pack(">I", len(nal)) + nal for nal in stream.frames]
    sizes = [len(s) for s in samples]
    delta = max(1, round(_MEDIA_TIMESCALE / fps))
    media_duration = delta * len(samples)
    movie_duration = media_duration * _MOVIE_TIMESCALE // _MEDIA_TIMESCALE
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    mdat = _box(b"mdat", *samples)
    chunk_offset = len(ftyp) + 8
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, _MOVIE_TIMESCALE, movie_duration),
        struct.pack(">IH", 0x00010000, 0x0100),  # rate 1.0, volume 1.0
        b"\0" * 10,
        _MATRIX,
        b"\0" * 24,
        struct.pack(">I", 2),  # next_track_ID
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, movie_duration),
        b"\0" * 8,
        struct.pack(">hhhH", 0, 0, 0, 0),  # layer, alternate_group, volume, reserved
        _MATRIX,
        struct.pack(">II", stream.width << 16, stream.height << 16),
    )
    mdhd = _full_box(
        b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, _MEDIA_TIMESCALE, media_duration), struct.pack(">HH", 0x55C4, 0)
    )
    hdlr = _full_box(b"hdlr", 0, 0, b"\0" * 4, b"vide", b"\0" * 12, b"VideoHandler\0")
    minf = _box(
        b"minf",
        _full_box(b"vmhd", 0, 1, b"\0" * 8),
        _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1))),
        _sample_table(stream, delta, chunk_offset, sizes),
    )
    moov = _box(b"moov", mvhd, _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf)))
    return ftyp + mdat + moov
