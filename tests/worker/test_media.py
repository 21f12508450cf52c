"""Input media, pure parts: names, base64 / data URIs, magic sniffing, the error tree."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.contract import CodedError, ErrorCode
from handlers.worker._media import (
    BadBase64,
    DisallowedUrl,
    InvalidMedia,
    MediaError,
    MediaFetchFailed,
    MediaTooLarge,
    UnsafeName,
    UnsupportedMedia,
    decode_base64,
    mime_for_extension,
    sanitize_name,
    sniff,
    validate_name,
    with_extension,
)

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.mark.parametrize("name", ["face.png", "voice_sample-1.wav", "a", "A.b.c", "x" * 128])
def test_safe_names_pass_unchanged(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("../x", "separator"),
        ("..", "directory reference"),
        (".", "directory reference"),
        ("/etc/passwd", "separator"),
        ("a/../../b", "separator"),
        ("..\\x.png", "separator"),
        ("C:\\x.png", "separator"),
        ("x\x00.png", "NUL"),
        ("x\n.png", "control"),
        ("x\u202egnp.exe", "control or format"),  # right-to-left override
        ("x\u200b.png", "control or format"),  # zero-width space
        ("\uff0e\uff0e\uff0fx", "reads as '../x'"),  # fullwidth ../
        ("\u2024\u2024", "ASCII"),  # one-dot leaders
        ("caf\u00e9.png", "ASCII"),
        (".hidden.png", "dot"),
        ("x" * 129, "limit"),
        ("a b.png", "letters, digits"),
        ("a:b.png", "letters, digits"),
        ("-rf", "letters, digits"),
    ],
)
def test_unsafe_names_are_refused_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(UnsafeName, match=reason.replace(".", r"\.").replace("(", r"\(")) as info:
        validate_name(name)
    assert info.value.code == ErrorCode.INVALID_INPUT.value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\win.ini", "win.ini"),
        ("my photo (1).JPG", "my_photo_1_.JPG"),
        ("caf\u00e9.png", "cafe.png"),
        ("...", "input"),
        ("", "input"),
        ("\u202e.png", "png"),
        ("a..b.png", "a.b.png"),
        ("x" * 300 + ".webp", "x" * 123 + ".webp"),
    ],
)
def test_sanitize_name_makes_derived_names_safe(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected
    assert validate_name(expected) == expected


def test_with_extension_only_fills_a_missing_one() -> None:
    assert with_extension("face", "png") == "face.png"
    assert with_extension("face.jpg", "png") == "face.jpg"
    assert len(with_extension("x" * 128, "webm")) == 128


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_base64_plain_and_data_uri() -> None:
    data = PNG_HEAD + bytes(range(256))
    assert decode_base64(_b64(data), 10_000).data == data
    decoded = decode_base64("data:image/png;base64," + _b64(data), 10_000)
    assert (decoded.data, decoded.declared_mime) == (data, "image/png")
    # MIME line wrapping and missing padding are common in the wild.
    wrapped = "\n".join(_b64(data)[i : i + 76] for i in range(0, len(_b64(data)), 76)).rstrip("=")
    assert decode_base64(wrapped, 10_000).data == data
    assert decode_base64("DATA:;charset=x;base64,QUJD", 10).data == b"ABC"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("not base64!!", "invalid base64"),
        ("QUJD$$$$", "invalid base64"),
        ("QUJDR", "impossible length"),
        ("data:image/png,rawbytes", "not base64-encoded"),
        ("data:image/png;base64", "malformed"),
        ("data:image/png;base64,", "empty"),
        ("data:image/png;base64,@@@@", "invalid base64"),
    ],
)
def test_bad_base64_is_invalid_input(text: str, match: str) -> None:
    with pytest.raises(BadBase64, match=match) as info:
        decode_base64(text, 1000)
    assert info.value.code == "invalid_input"


def test_oversize_base64_is_refused_before_decoding() -> None:
    with pytest.raises(MediaTooLarge, match="limit is 1000"):
        decode_base64("A" * 1340, 1000)
    # Exactly at the cap is fine.
    assert len(decode_base64(_b64(b"\x00" * 1000), 1000).data) == 1000
    with pytest.raises(MediaTooLarge):
        decode_base64(_b64(b"\x00" * 1001), 1000)


@pytest.mark.parametrize(
    ("head", "mime", "ext"),
    [
        (PNG_HEAD, "image/png", "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg", "jpg"),
        (b"GIF89a\x01\x00", "image/gif", "gif"),
        (b"GIF87a\x01\x00", "image/gif", "gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp", "webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav", "wav"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac", "flac"),
        (b"ID3\x04\x00\x00\x00\x00", "audio/mpeg", "mp3"),
        (b"\xff\xfb\x90\x64\x00", "audio/mpeg", "mp3"),
        (b"OggS\x00\x02", "audio/ogg", "ogg"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video/mp4", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", "video/quicktime", "mov"),
        (b"\x00\x00\x00\x20ftypM4A \x00", "audio/mp4", "m4a"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm", "webm"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska", "mkv"),
        (b"PK\x03\x04\x14\x00", "application/zip", "zip"),
    ],
)
def test_sniff_recognises_media(head: bytes, mime: str, ext: str) -> None:
    found = sniff(head)
    assert found is not None
    assert (found.mime, found.ext) == (mime, ext)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"<html><body>",
        b"%PDF-1.7",
        b"\xff\xff\xff\xff",
        b"#!/bin/sh\n",
        b"\x7fELF\x02\x01",
        b"RIFF\x00\x00\x00\x00AVI ",
    ],
)
def test_sniff_refuses_the_rest(head: bytes) -> None:
    assert sniff(head) is None


def test_mime_for_extension() -> None:
    assert mime_for_extension("a.PNG") == "image/png"
    assert mime_for_extension("x.glb") == "model/gltf-binary"
    assert mime_for_extension("noext") is None
    assert mime_for_extension("a.unknownext") is None


def test_error_tree_codes_and_retryability() -> None:
    for cls in (UnsafeName, DisallowedUrl, BadBase64, MediaTooLarge, UnsupportedMedia):
        err = cls("x", source="s")
        assert isinstance(err, InvalidMedia)
        assert isinstance(err, MediaError)
        assert (err.code, err.retryable) == ("invalid_input", False)
        assert err.details() == {"code": "invalid_input", "message": "x", "retryable": False, "source": "s"}
    fetch = MediaFetchFailed("503", retryable=True)
    assert (fetch.code, fetch.retryable) == ("media_fetch_failed", True)
    # Every code is one the contract knows, so the handler can build a JobError from it.
    job_error = fetch.to_job_error()
    assert (job_error.code, job_error.retryable) == (ErrorCode.MEDIA_FETCH_FAILED, True)
    unsafe = UnsafeName("media name '../x' contains a path separator")
    bad = unsafe.to_job_error("job-1")
    assert bad.summary() == "invalid_input: media name '../x' contains a path separator"
    assert (bad.job_id, bad.retryable) == ("job-1", False)
    assert str(unsafe.problem_at("input.media[0].name")) == (
        "input.media[0].name: media name '../x' contains a path separator"
    )
    assert isinstance(unsafe, CodedError) and isinstance(fetch, CodedError)


@given(st.text(max_size=300))
def test_sanitized_names_are_always_safe(raw: str) -> None:
    name = sanitize_name(raw)
    assert validate_name(name) == name
    assert "/" not in name and "\\" not in name and not name.startswith(".")
