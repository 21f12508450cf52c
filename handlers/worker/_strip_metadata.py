"""``output.strip_metadata``: copy an image without the workflow ComfyUI writes into it, never re-encoding pixels.

ComfyUI's savers put the prompt and the UI workflow into the file: PNG ``tEXt`` chunks (``prompt``, ``workflow``,
any other ``extra_pnginfo`` key), ``comf`` chunks in animated PNG, EXIF in (animated) WebP, Vorbis comments in FLAC.
For public delivery those go; everything else (image and audio data, colour profile, animation control, seek
table) is copied chunk by chunk as it is, in bounded memory whatever the file size. Video containers are not
rewritten.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO, Final

__all__ = ["strip_metadata"]

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
#: Text, EXIF, and ComfyUI's private chunk in SaveAnimatedPNG files.
_PNG_DROP: Final = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"comf"})
_WEBP_DROP: Final = frozenset({b"EXIF", b"XMP "})
_FLAC_VORBIS_COMMENT: Final = 4
_VP8X_EXIF: Final = 0x08
_VP8X_XMP: Final = 0x04
_COPY_CHUNK: Final = 1024 * 1024


def _copy(src: IO[bytes], dst: IO[bytes], size: int) -> None:
    while size > 0:
        block = src.read(min(size, _COPY_CHUNK))
        if not block:
            raise ValueError("the file ends inside a chunk")
        dst.write(block)
        size -= len(block)


def _strip_png(src: IO[bytes], dst: IO[bytes]) -> int:
    dst.write(_PNG_SIGNATURE)
    dropped = 0
    while header := src.read(8):
        if len(header) < 8:
            raise ValueError("the file ends inside a chunk header")
        length, kind = struct.unpack(">I4s", header)
        if kind in _PNG_DROP:
            src.seek(length + 4, 1)  # data and CRC
            dropped += 1
            continue
        dst.write(header)
        _copy(src, dst, length + 4)
        if kind == b"IEND":
            break
    return dropped


def _strip_webp(src: IO[bytes], dst: IO[bytes]) -> int:
    dst.write(b"RIFF\0\0\0\0WEBP")
    dropped = 0
    while header := src.read(8):
        if len(header) < 8:
            raise ValueError("the file ends inside a chunk header")
        kind, size = struct.unpack("<4sI", header)
        padded = size + (size & 1)
        if kind in _WEBP_DROP:
            src.seek(padded, 1)
            dropped += 1
            continue
        dst.write(header)
        if kind == b"VP8X" and size >= 1:
            flags = src.read(1)
            if not flags:
                raise ValueError("the file ends inside a chunk")
            dst.write(bytes([flags[0] & ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF]))
            _copy(src, dst, padded - 1)
        else:
            _copy(src, dst, padded)
    total = dst.tell()
    dst.seek(4)
    dst.write(struct.pack("<I", total - 8))
    return dropped


def _strip_flac(src: IO[bytes], dst: IO[bytes]) -> int:
    dst.write(b"fLaC")
    kept: list[tuple[int, bytes]] = []
    dropped = 0
    last = False
    while not last:
        header = src.read(4)
        if len(header) < 4:
            raise ValueError("the file ends inside a metadata block header")
        last = bool(header[0] & 0x80)
        kind, length = header[0] & 0x7F, int.from_bytes(header[1:4], "big")
        if kind == _FLAC_VORBIS_COMMENT:
            src.seek(length, 1)
            dropped += 1
            continue
        body = src.read(length)  # metadata blocks are small (< 16 MiB by the format)
        if len(body) < length:
            raise ValueError("the file ends inside a metadata block")
        kept.append((kind, body))
    if not kept or kept[0][0] != 0:
        raise ValueError("a FLAC file starts with its STREAMINFO block")
    for i, (kind, body) in enumerate(kept):
        flag = 0x80 if i == len(kept) - 1 else 0
        dst.write(bytes([flag | kind]) + len(body).to_bytes(3, "big") + body)
    while block := src.read(_COPY_CHUNK):
        dst.write(block)
    return dropped


def strip_metadata(src: Path, dst: Path) -> bool:
    """Write ``src`` without its metadata to ``dst``; ``False`` (and no ``dst``) when there was none to drop or
    the format is not one this rewrites (PNG, WebP, FLAC). Blocking: run in a thread.
    ``ValueError`` for a file that is truncated or not what its signature says."""
    with src.open("rb") as fh:
        head = fh.read(12)
        fh.seek(0)
        if head.startswith(_PNG_SIGNATURE):
            fh.seek(len(_PNG_SIGNATURE))
            strip = _strip_png
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            fh.seek(12)
            strip = _strip_webp
        elif head[:4] == b"fLaC":
            fh.seek(4)
            strip = _strip_flac
        else:
            return False
        try:
            with dst.open("w+b") as out:
                dropped = strip(fh, out)
        except (ValueError, struct.error):
            dst.unlink(missing_ok=True)
            raise
    if not dropped:
        dst.unlink(missing_ok=True)
        return False
    return True
