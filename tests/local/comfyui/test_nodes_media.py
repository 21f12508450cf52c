"""Audio and video nodes write real files: FLAC and H.264 MP4, parsed here from their specifications."""

from __future__ import annotations

import array
import hashlib
import math
import re
import struct
import sys
from typing import Any

import pytest
from PIL import Image

from handlers.local.comfyui._node import Folders, NodeOutput
from handlers.local.comfyui._nodes import NODE_CLASSES, RecordingContext
from handlers.local.comfyui._nodes._types import Audio, Images


@pytest.fixture
def ctx(folders: Folders) -> RecordingContext:
    return RecordingContext(folders, pnginfo={"prompt": {"1": {"class_type": "EmptyAudio"}}, "workflow": {"v": 1}})


async def run(ctx: RecordingContext, class_type: str, **inputs: Any) -> NodeOutput:
    return await NODE_CLASSES[class_type]().execute(ctx, **inputs)


# --- FLAC, read back as the specification describes it -----------------------------------------------------------


def _crc(data: bytes, poly: int, width: int) -> int:
    crc, top, mask = 0, 1 << (width - 1), (1 << width) - 1
    for byte in data:
        crc ^= byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


def read_flac(data: bytes) -> dict[str, Any]:
    """STREAMINFO, the Vorbis comments and the decoded samples (CONSTANT and VERBATIM subframes only)."""
    assert data[:4] == b"fLaC"
    pos, last = 4, False
    info: dict[str, Any] = {}
    comments: dict[str, str] = {}
    while not last:
        last, kind = bool(data[pos] & 0x80), data[pos] & 0x7F
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        body = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if kind == 0:
            packed = int.from_bytes(body[10:18], "big")
            info = {
                "rate": packed >> 44,
                "channels": ((packed >> 41) & 7) + 1,
                "bits": ((packed >> 36) & 31) + 1,
                "total": packed & ((1 << 36) - 1),
                "md5": body[18:34],
            }
        elif kind == 4:
            vendor = struct.unpack_from("<I", body)[0]
            at = 4 + vendor
            (count,) = struct.unpack_from("<I", body, at)
            at += 4
            for _ in range(count):
                (size,) = struct.unpack_from("<I", body, at)
                key, _, value = body[at + 4 : at + 4 + size].decode().partition("=")
                comments[key] = value
                at += 4 + size
    channels: list[list[int]] = [[] for _ in range(info["channels"])]
    while pos < len(data):
        start = pos
        assert data[pos : pos + 2] == b"\xff\xf8", "frame sync"
        assert data[pos + 2] >> 4 == 0b0111 and (data[pos + 3] >> 1) & 7 == 0b100
        pos += 4
        lead = data[pos]
        pos += 1 if lead < 0x80 else 8 - (lead ^ 0xFF).bit_length()
        size = struct.unpack_from(">H", data, pos)[0] + 1
        pos += 2
        assert data[pos] == _crc(data[start:pos], 0x07, 8), "header CRC-8"
        pos += 1
        for channel in channels:
            kind = data[pos]
            pos += 1
            if kind == 0x00:
                channel.extend([struct.unpack_from(">h", data, pos)[0]] * size)
                pos += 2
            else:
                assert kind == 0x02, f"unexpected subframe {kind:#x}"
                channel.extend(struct.unpack_from(f">{size}h", data, pos))
                pos += 2 * size
        assert struct.unpack_from(">H", data, pos)[0] == _crc(data[start:pos], 0x8005, 16), "frame CRC-16"
        pos += 2
    interleaved = array.array("h", [s for frame in zip(*channels, strict=True) for s in frame])
    if sys.byteorder == "big":
        interleaved.byteswap()
    assert hashlib.md5(interleaved.tobytes()).digest() == info["md5"], "STREAMINFO MD5"
    return {**info, "comments": comments, "samples": channels}


async def test_empty_audio_saves_a_silent_flac(ctx: RecordingContext, folders: Folders) -> None:
    (audio,) = (await run(ctx, "EmptyAudio", duration=0.5, sample_rate=44100, channels=2)).values
    assert repr(audio) == "AUDIO[2ch x 22050 @ 44100 Hz]"
    out = await run(ctx, "SaveAudio", audio=audio, filename_prefix="probe/audio")
    assert out.ui == {"audio": [{"filename": "audio_00001_.flac", "subfolder": "probe", "type": "output"}]}
    data = (folders.output / "probe" / "audio_00001_.flac").read_bytes()
    flac = read_flac(data)
    assert (flac["rate"], flac["channels"], flac["bits"], flac["total"]) == (44100, 2, 16, 22050)
    assert flac["samples"] == [[0] * 22050, [0] * 22050]
    assert flac["comments"] == {"prompt": '{"1": {"class_type": "EmptyAudio"}}', "workflow": '{"v": 1}'}
    assert len(data) < 2000  # silence is stored as CONSTANT subframes


async def test_save_audio_keeps_every_sample(ctx: RecordingContext, folders: Folders) -> None:
    left = array.array("h", (int(20000 * math.sin(i / 7)) for i in range(9000)))
    right = array.array("h", (-v for v in left))
    out = await run(ctx, "SaveAudio", audio=Audio((left, right), 48000), filename_prefix="audio/ComfyUI")
    assert out.ui is not None
    entry = out.ui["audio"][0]
    assert (entry["filename"], entry["subfolder"]) == ("ComfyUI_00001_.flac", "audio")
    flac = read_flac((folders.output / "audio" / entry["filename"]).read_bytes())
    assert flac["samples"] == [list(left), list(right)] and flac["rate"] == 48000


# --- MP4 / H.264 ---------------------------------------------------------------------------------------------------


def boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[str, bytes]:
    end = len(data) if end is None else end
    found: dict[str, bytes] = {}
    while start < end:
        size, kind = struct.unpack_from(">I4s", data, start)
        assert size >= 8, "box size"
        found[kind.decode()] = data[start + 8 : start + size]
        start += size
    assert start == end, "boxes must tile their parent exactly"
    return found


async def test_create_and_save_video_writes_an_h264_mp4(ctx: RecordingContext, folders: Folders) -> None:
    colours = [(255, 0, 0), (0, 0, 255), (255, 255, 255)]
    frames = Images(tuple(Image.new("RGB", (40, 30), c) for c in colours))
    (video,) = (await run(ctx, "CreateVideo", images=frames, fps=6.0)).values
    out = await run(ctx, "SaveVideo", video=video, filename_prefix="probe/video", format="auto", codec="auto")
    assert out.ui == {
        "images": [{"filename": "video_00001_.mp4", "subfolder": "probe", "type": "output"}],
        "animated": [True],
    }
    data = (folders.output / "probe" / "video_00001_.mp4").read_bytes()
    top = boxes(data)
    assert list(top) == ["ftyp", "mdat", "moov"] and top["ftyp"][:4] == b"isom"
    moov = boxes(top["moov"])
    mdia = boxes(boxes(moov["trak"])["mdia"])
    assert mdia["hdlr"][8:12] == b"vide"
    timescale, duration = struct.unpack_from(">II", mdia["mdhd"], 12)
    assert duration / timescale == pytest.approx(0.5)  # 3 frames at 6 fps
    stbl = boxes(boxes(mdia["minf"])["stbl"])
    avc1 = stbl["stsd"][8:]
    assert avc1[4:8] == b"avc1"
    assert struct.unpack_from(">HH", avc1, 8 + 24) == (40, 30)
    avcc = boxes(avc1[8 + 78 :])["avcC"]
    sps_length = struct.unpack_from(">H", avcc, 6)[0]
    sps = avcc[8 : 8 + sps_length]
    assert sps[0] & 0x1F == 7 and sps[1] == 66  # SPS, Baseline profile
    count = struct.unpack_from(">I", stbl["stsz"], 8)[0]
    sizes = struct.unpack_from(f">{count}I", stbl["stsz"], 12)
    assert count == 3
    offset = struct.unpack_from(">I", stbl["stco"], 8)[0]
    # Each sample is one length-prefixed IDR slice whose I_PCM luma holds the frame's (studio-range) Y value.
    for size, colour in zip(sizes, colours, strict=True):
        sample = data[offset : offset + size]
        assert struct.unpack_from(">I", sample)[0] == size - 4 and sample[4] & 0x1F == 5
        pixel = Image.new("RGB", (1, 1), colour).convert("YCbCr").getpixel((0, 0))
        assert isinstance(pixel, tuple)
        y = pixel[0]
        assert bytes([16 + y * 219 // 255]) * 16 in sample
        offset += size


async def test_save_video_counter_and_default_prefix(ctx: RecordingContext, folders: Folders) -> None:
    (video,) = (await run(ctx, "CreateVideo", images=Images((Image.new("RGB", (17, 9)),)), fps=30.0)).values
    for n in (1, 2):
        out = await run(ctx, "SaveVideo", video=video, filename_prefix="video/ComfyUI", format="mp4", codec="h264")
        assert out.ui is not None
        assert out.ui["images"][0] == {"filename": f"ComfyUI_{n:05}_.mp4", "subfolder": "video", "type": "output"}
    assert (folders.output / "video" / "ComfyUI_00002_.mp4").stat().st_size > 0


async def test_video_keeps_its_audio_and_prints_compactly(ctx: RecordingContext) -> None:
    (audio,) = (await run(ctx, "EmptyAudio", duration=0.1, sample_rate=8000, channels=1)).values
    (video,) = (await run(ctx, "CreateVideo", images=Images((Image.new("RGB", (8, 8)),)), fps=24.0, audio=audio)).values
    assert video.audio is audio
    assert repr(video) == "VIDEO[1 frames 8x8 @ 24.0 fps]"


async def test_preview_audio_writes_a_temp_flac(ctx: RecordingContext, folders: Folders) -> None:
    (audio,) = (await run(ctx, "EmptyAudio", duration=0.01, sample_rate=8000, channels=1)).values
    out = await run(ctx, "PreviewAudio", audio=audio)
    assert out.ui is not None
    (entry,) = out.ui["audio"]
    assert entry["type"] == "temp" and entry["subfolder"] == ""
    assert re.fullmatch(r"ComfyUI_temp_[a-z]{5}_00001_\.flac", entry["filename"])
    assert read_flac((folders.temp / entry["filename"]).read_bytes())["total"] == 80
