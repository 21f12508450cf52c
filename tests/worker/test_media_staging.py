"""Input staging against real servers on 127.0.0.1: caps, lying lengths, timeouts, redirects, the post-resolution
check, base64 and S3, and the guarantee that nothing lands outside the job folder."""

from __future__ import annotations

import asyncio
import base64
import io
import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from aiohttp import web
from PIL import Image

from handlers.contract import MediaItem
from handlers.local._serving import ServerThread
from handlers.outbound import IPAddress
from handlers.worker._media import (
    BadBase64,
    DisallowedUrl,
    InvalidMedia,
    MediaError,
    MediaFetchFailed,
    MediaTooLarge,
    UnsafeName,
    UnsupportedMedia,
)
from handlers.worker._staging import (
    InputStager,
    MediaFetcher,
    MediaLimits,
    job_files,
    map_httpx_error,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


JOB = "job-123"


def png_bytes(size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


PNG = png_bytes()


class MediaServer:
    """Routes that misbehave on purpose. ``hits`` counts requests per path."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.release: asyncio.Event | None = None

    async def app(self) -> web.Application:
        self.release = asyncio.Event()
        app = web.Application()

        def count(request: web.Request) -> None:
            self.hits[request.path] = self.hits.get(request.path, 0) + 1

        async def image(request: web.Request) -> web.Response:
            count(request)
            return web.Response(body=PNG, content_type="application/octet-stream")

        async def html(request: web.Request) -> web.Response:
            count(request)
            return web.Response(text="<html>login</html>", content_type="image/png")  # a lying type

        async def chunked(request: web.Request) -> web.StreamResponse:
            count(request)
            size = int(request.query["size"])
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(PNG[:64])
            sent = 64
            block = b"\x00" * 65536
            while sent < size:
                piece = block[: size - sent]
                await resp.write(piece)
                sent += len(piece)
            await resp.write_eof()
            return resp

        async def declared_huge(request: web.Request) -> web.StreamResponse:
            count(request)
            resp = web.StreamResponse(headers={"Content-Length": str(10**12)})
            await resp.prepare(request)
            await resp.write(PNG[:64])
            assert self.release is not None
            await self.release.wait()
            return resp

        async def stall(request: web.Request) -> web.StreamResponse:
            count(request)
            resp = web.StreamResponse(headers={"Content-Length": "1000"})
            await resp.prepare(request)
            await resp.write(PNG[:16])
            assert self.release is not None
            await self.release.wait()
            return resp

        async def redirect(request: web.Request) -> web.Response:
            count(request)
            raise web.HTTPFound(request.query["to"])

        async def loop(request: web.Request) -> web.Response:
            count(request)
            raise web.HTTPFound("/loop")

        async def status(request: web.Request) -> web.Response:
            count(request)
            return web.Response(status=int(request.match_info["code"]))

        app.router.add_get("/img.png", image)
        app.router.add_get("/noext", image)
        app.router.add_get("/html", html)
        app.router.add_get("/chunked", chunked)
        app.router.add_get("/declared-huge", declared_huge)
        app.router.add_get("/stall", stall)
        app.router.add_get("/redirect", redirect)
        app.router.add_get("/loop", loop)
        app.router.add_get("/status/{code}", status)
        return app


@pytest.fixture
def media_server() -> Iterator[tuple[MediaServer, str]]:
    routes = MediaServer()
    server = ServerThread(routes.app)
    with server:
        try:
            yield routes, server.url
        finally:

            async def release() -> None:
                assert routes.release is not None
                routes.release.set()

            server.call(release())


def stager(tmp_path: Path, limits: MediaLimits, **kwargs: object) -> InputStager:
    return InputStager(tmp_path / "input", JOB, MediaFetcher(limits, **kwargs))  # type: ignore[arg-type]


def only_job_files(tmp_path: Path) -> list[str]:
    """Every file under the input dir, relative to it; proves nothing was written anywhere else."""
    root = tmp_path / "input"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


ALLOW = MediaLimits(allow_private=True, max_bytes=100_000, read_timeout_s=0.5, total_timeout_s=10)


async def test_stage_url_writes_atomically_under_the_job_folder(
    tmp_path: Path, media_server: tuple[MediaServer, str]
) -> None:
    _, url = media_server
    staged = await stager(tmp_path, ALLOW).stage_url(f"{url}/img.png?sig=secret", name="face.png")
    assert staged.comfy_name == f"{JOB}/face.png"
    assert staged.path == (tmp_path / "input" / JOB / "face.png").resolve()
    assert staged.path.read_bytes() == PNG
    assert (staged.mime, staged.bytes) == ("image/png", len(PNG))
    assert "secret" not in staged.source
    assert only_job_files(tmp_path) == [f"{JOB}/face.png"]


async def test_derived_names_are_sanitised_and_get_the_sniffed_extension(
    tmp_path: Path, media_server: tuple[MediaServer, str]
) -> None:
    _, url = media_server
    s = stager(tmp_path, ALLOW)
    first = await s.stage_url(f"{url}/noext")
    second = await s.stage_url(f"{url}/noext")
    third = await s.stage_url(f"{url}/img.png")
    assert [first.comfy_name, second.comfy_name, third.comfy_name] == [
        f"{JOB}/noext.png",
        f"{JOB}/noext-1.png",
        f"{JOB}/img.png",
    ]


async def test_private_url_refused_by_default_without_any_request(
    tmp_path: Path, media_server: tuple[MediaServer, str]
) -> None:
    routes, url = media_server
    with pytest.raises(DisallowedUrl, match="loopback"):
        await stager(tmp_path, MediaLimits()).stage_url(f"{url}/img.png", name="x.png")
    assert routes.hits == {}
    assert only_job_files(tmp_path) == []


async def test_public_looking_name_resolving_to_loopback_is_refused_after_resolution(
    tmp_path: Path, media_server: tuple[MediaServer, str]
) -> None:
    routes, url = media_server
    port = int(url.rsplit(":", 1)[1])
    calls: list[str] = []

    async def resolver(host: str, _port: int) -> list[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    s = stager(tmp_path, MediaLimits(max_bytes=100_000), resolver=resolver)
    with pytest.raises(DisallowedUrl, match=r"resolves to 127\.0\.0\.1"):
        await s.stage_url(f"http://cdn.media-example.com:{port}/img.png", name="x.png")
    assert calls == ["cdn.media-example.com"]
    assert routes.hits == {}
    # The same resolver with private addresses allowed reaches the server by the checked address.
    allowed = stager(tmp_path, ALLOW, resolver=resolver)
    staged = await allowed.stage_url(f"http://cdn.media-example.com:{port}/img.png", name="y.png")
    assert staged.path.read_bytes() == PNG


async def test_chunked_body_over_the_cap_is_cut_off(tmp_path: Path, media_server: tuple[MediaServer, str]) -> None:
    _, url = media_server
    with pytest.raises(MediaTooLarge, match="limit of 100000"):
        await stager(tmp_path, ALLOW).stage_url(f"{url}/chunked?size=5000000", name="x.png")
    assert only_job_files(tmp_path) == []
    staged = await stager(tmp_path, ALLOW).stage_url(f"{url}/chunked?size=100000", name="ok.png")
    assert staged.bytes == 100_000


async def test_declared_length_over_the_cap_is_refused_before_reading(
    tmp_path: Path, media_server: tuple[MediaServer, str]
) -> None:
    _, url = media_server
    with pytest.raises(MediaTooLarge, match="1000000000000 bytes"):
        await stager(tmp_path, ALLOW).stage_url(f"{url}/declared-huge", name="x.png")
    assert only_job_files(tmp_path) == []


class RawServer:
    """A socket server that answers every connection with the same canned bytes: for responses that lie."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=15)


@pytest.fixture
def raw_server() -> Iterator[list[RawServer]]:
    servers: list[RawServer] = []
    yield servers
    for server in servers:
        server.close()


async def test_content_length_smaller_than_the_body_reads_only_what_was_declared(
    tmp_path: Path, raw_server: list[RawServer]
) -> None:
    raw_server.append(RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + PNG + b"\x00" * 500_000))
    staged = await stager(tmp_path, ALLOW).stage_url(raw_server[0].url + "/a", name="x.png")
    assert staged.bytes == 100
    assert staged.path.read_bytes() == (PNG + b"\x00" * 100)[:100]


async def test_content_length_larger_than_the_body_is_a_retryable_fetch_error(
    tmp_path: Path, raw_server: list[RawServer]
) -> None:
    raw_server.append(RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n" + PNG))
    with pytest.raises(MediaFetchFailed) as info:
        await stager(tmp_path, ALLOW).stage_url(raw_server[0].url + "/a", name="x.png")
    assert info.value.retryable is True
    assert only_job_files(tmp_path) == []


async def test_content_length_under_cap_but_body_over_cap_without_length_is_counted(
    tmp_path: Path, raw_server: list[RawServer]
) -> None:
    # No Content-Length and no chunking: the body runs until the connection closes.
    raw_server.append(RawServer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + PNG + b"\x00" * 300_000))
    with pytest.raises(MediaTooLarge):
        await stager(tmp_path, ALLOW).stage_url(raw_server[0].url + "/a", name="x.png")
    assert only_job_files(tmp_path) == []


async def test_stalled_server_times_out_retryably(tmp_path: Path, media_server: tuple[MediaServer, str]) -> None:
    _, url = media_server
    with pytest.raises(MediaFetchFailed, match="timed out") as info:
        await stager(tmp_path, ALLOW).stage_url(f"{url}/stall", name="x.png")
    assert info.value.retryable is True
    assert only_job_files(tmp_path) == []


async def test_total_deadline_bounds_the_whole_fetch(tmp_path: Path, media_server: tuple[MediaServer, str]) -> None:
    _, url = media_server
    limits = MediaLimits(allow_private=True, read_timeout_s=30, total_timeout_s=0.3)
    with pytest.raises(MediaFetchFailed, match=r"longer than 0\.3 s") as info:
        await stager(tmp_path, limits).stage_url(f"{url}/stall", name="x.png")
    assert info.value.retryable is True


async def test_redirects_are_followed_and_rechecked(tmp_path: Path, media_server: tuple[MediaServer, str]) -> None:
    routes, url = media_server
    staged = await stager(tmp_path, ALLOW).stage_url(f"{url}/redirect?to=/img.png", name="r.png")
    assert staged.path.read_bytes() == PNG
    assert routes.hits == {"/redirect": 1, "/img.png": 1}
    with pytest.raises(DisallowedUrl, match="scheme 'file'"):
        await stager(tmp_path, ALLOW).stage_url(f"{url}/redirect?to=file:///etc/passwd", name="f.png")
    with pytest.raises(MediaFetchFailed, match="more than 2 redirects"):
        limits = MediaLimits(allow_private=True, max_redirects=2)
        await stager(tmp_path, limits).stage_url(f"{url}/loop", name="l.png")
    assert routes.hits["/loop"] == 3


@pytest.mark.parametrize(("code", "retryable"), [(404, False), (403, False), (429, True), (500, True), (503, True)])
async def test_http_errors_carry_retryability(
    tmp_path: Path, media_server: tuple[MediaServer, str], code: int, retryable: bool
) -> None:
    _, url = media_server
    with pytest.raises(MediaFetchFailed, match=f"HTTP {code}") as info:
        await stager(tmp_path, ALLOW).stage_url(f"{url}/status/{code}", name="x.png")
    assert info.value.retryable is retryable
    assert info.value.code == "media_fetch_failed"


async def test_content_is_sniffed_not_trusted(tmp_path: Path, media_server: tuple[MediaServer, str]) -> None:
    _, url = media_server
    with pytest.raises(UnsupportedMedia, match="unrecognised content"):
        await stager(tmp_path, ALLOW).stage_url(f"{url}/html", name="x.png")
    with pytest.raises(UnsupportedMedia, match="named like audio/wav but its bytes are image/png"):
        await stager(tmp_path, ALLOW).stage_url(f"{url}/img.png", name="voice.wav")
    assert only_job_files(tmp_path) == []


async def test_connection_refused_is_retryable(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    with pytest.raises(MediaFetchFailed, match="network error") as info:
        await stager(tmp_path, ALLOW).stage_url(f"http://127.0.0.1:{port}/x", name="x.png")
    assert info.value.retryable


# -- connect-by-address, checked without a network: a mock transport sees exactly what would be sent ----------


def recording_transport(seen: list[httpx.Request], responses: dict[str, httpx.Response]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses[request.headers["host"] + request.url.path]

    return httpx.MockTransport(handler)


async def test_request_goes_to_the_checked_address_with_host_and_sni_kept(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # a rebinding resolver: public first, loopback after

    async def rebinding(_host: str, _port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in next(answers)]

    transport = recording_transport(seen, {"cdn.example.com/a.png": httpx.Response(200, content=PNG)})
    s = stager(tmp_path, MediaLimits(), resolver=rebinding, transport_factory=lambda: transport)
    staged = await s.stage_url("https://cdn.example.com/a.png", name="a.png")
    assert staged.path.read_bytes() == PNG
    (request,) = seen
    assert request.url.host == "93.184.216.34"
    assert request.url.scheme == "https"
    assert request.headers["host"] == "cdn.example.com"
    assert request.extensions["sni_hostname"] == "cdn.example.com"
    assert next(answers) == ["127.0.0.1"]  # resolved once: the second (rebound) answer was never asked for


async def test_redirect_to_a_private_address_is_refused_before_connecting(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    async def resolver(host: str, _port: int) -> list[IPAddress]:
        return [ipaddress.ip_address({"public.example": "93.184.216.34", "internal.example": "10.0.0.5"}[host])]

    for location, reason in [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://internal.example/secret", r"resolves to 10\.0\.0\.5"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://2130706433/", "loopback"),
    ]:
        seen.clear()
        transport = recording_transport(
            seen, {"public.example/a.png": httpx.Response(302, headers={"Location": location})}
        )
        s = stager(tmp_path, MediaLimits(), resolver=resolver, transport_factory=lambda t=transport: t)
        with pytest.raises(DisallowedUrl, match=reason):
            await s.stage_url("http://public.example/a.png")
        assert [r.headers["host"] for r in seen] == ["public.example"]
    assert only_job_files(tmp_path) == []


def test_httpx_error_mapping_is_complete() -> None:
    def subclasses(cls: type) -> set[type]:
        out: set[type] = set(cls.__subclasses__())
        for sub in list(out):
            out |= subclasses(sub)
        return out

    request = httpx.Request("GET", "http://x/")
    for cls in sorted(subclasses(httpx.HTTPError), key=lambda c: c.__name__):
        if cls is httpx.HTTPStatusError:
            exc: httpx.HTTPError = cls("x", request=request, response=httpx.Response(502, request=request))
        else:
            exc = cls("x")
        mapped = map_httpx_error(exc, "src")
        assert isinstance(mapped, MediaFetchFailed), cls
        expected = issubclass(cls, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)
        if expected:
            assert mapped.retryable, cls
    assert map_httpx_error(httpx.ReadTimeout("x"), "s").retryable
    assert not map_httpx_error(httpx.DecodingError("x"), "s").retryable


# -- base64, names, S3 ------------------------------------------------------------------------------------------


async def test_base64_and_data_uri_are_staged(tmp_path: Path) -> None:
    s = stager(tmp_path, ALLOW)
    staged = await s.stage_base64("data:image/png;base64," + base64.b64encode(PNG).decode(), name="in")
    assert staged.comfy_name == f"{JOB}/in.png"
    assert staged.path.read_bytes() == PNG
    with pytest.raises(BadBase64):
        await s.stage_base64("%%%%", name="bad.png")
    with pytest.raises(MediaTooLarge):
        await s.stage_base64(base64.b64encode(b"\x00" * 100_001).decode(), name="big.png")
    assert only_job_files(tmp_path) == [f"{JOB}/in.png"]


@pytest.mark.parametrize("name", ["../escape.png", "/tmp/abs.png", "a\x00.png", "\uff0e\uff0e\uff0fx.png", ".."])
async def test_traversal_names_never_write_anything(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeName):
        await stager(tmp_path, ALLOW).stage_base64(base64.b64encode(PNG).decode(), name=name)
    assert only_job_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input"]


async def test_duplicate_explicit_names_are_refused(tmp_path: Path) -> None:
    s = stager(tmp_path, ALLOW)
    await s.stage_base64(base64.b64encode(PNG).decode(), name="a.png")
    with pytest.raises(InvalidMedia, match="used twice"):
        await s.stage_base64(base64.b64encode(PNG).decode(), name="a.png")


@pytest.mark.parametrize("job_id", ["../x", "a/b", "", ".hidden", "x" * 200])
def test_bad_job_ids_cannot_name_a_folder(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(UnsafeName):
        InputStager(tmp_path / "input", job_id, MediaFetcher(ALLOW))


def test_symlinked_job_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "input" / JOB).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeName, match="not a plain folder"):
        InputStager(tmp_path / "input", JOB, MediaFetcher(ALLOW))


async def test_stage_from_s3(tmp_path: Path, s3_client: S3Client, s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="refs/Face Photo.png", Body=PNG)
    s3_client.put_object(Bucket=s3_bucket, Key="refs/big.png", Body=PNG + b"\x00" * 200_000)
    s = InputStager(tmp_path / "input", JOB, MediaFetcher(ALLOW, s3_client=s3_client))
    staged = await s.stage_s3(f"s3://{s3_bucket}/refs/Face Photo.png")
    assert staged.comfy_name == f"{JOB}/Face_Photo.png"
    assert staged.path.read_bytes() == PNG
    with pytest.raises(MediaFetchFailed, match="NoSuchKey") as info:
        await s.stage_s3(f"s3://{s3_bucket}/refs/missing.png", name="m.png")
    assert info.value.retryable is False
    with pytest.raises(MediaTooLarge):
        await s.stage_s3(f"s3://{s3_bucket}/refs/big.png", name="b.png")
    with pytest.raises(InvalidMedia, match="s3://bucket/key"):
        await s.stage_s3("s3://Bad_Bucket/x", name="c.png")
    assert only_job_files(tmp_path) == [f"{JOB}/Face_Photo.png"]


async def test_stage_all_with_contract_items(tmp_path: Path, media_server: tuple[MediaServer, str]) -> None:
    _, url = media_server
    items = [
        MediaItem(name="face", url=f"{url}/img.png"),
        MediaItem(name="mask.png", base64=base64.b64encode(png_bytes((4, 4))).decode()),
    ]
    staged = await stager(tmp_path, ALLOW).stage_all(items)
    assert {k: v.comfy_name for k, v in staged.items()} == {"face": f"{JOB}/face.png", "mask.png": f"{JOB}/mask.png"}


async def test_stage_all_failure_propagates_as_media_error(
    tmp_path: Path, media_server: tuple[MediaServer, str]
) -> None:
    _, url = media_server
    items = [MediaItem(name="ok", url=f"{url}/img.png"), MediaItem(name="bad", url=f"{url}/status/404")]
    with pytest.raises(MediaFetchFailed, match="HTTP 404") as info:
        await stager(tmp_path, ALLOW).stage_all(items)
    assert info.value.media_name == "bad"
    assert info.value.to_job_error().code == "media_fetch_failed"


async def test_job_files_removes_inputs_and_tracked_outputs_whatever_happens(tmp_path: Path) -> None:
    out = tmp_path / "output"
    (out / "probe").mkdir(parents=True)
    produced = out / "probe" / "img_00001_.png"
    produced.write_bytes(PNG)
    unrelated = out / "keep.png"
    unrelated.write_bytes(PNG)
    outside = tmp_path / "outside.png"
    outside.write_bytes(PNG)
    with pytest.raises(RuntimeError, match="boom"):
        async with job_files(tmp_path / "input", JOB, [out]) as files:
            s = InputStager(tmp_path / "input", JOB, MediaFetcher(ALLOW))
            await s.stage_base64(base64.b64encode(PNG).decode(), name="in.png")
            files.track(produced)
            files.track(outside)  # never removed: not under an output root
            raise RuntimeError("boom")
    assert not (tmp_path / "input" / JOB).exists()
    assert not produced.exists()
    assert unrelated.exists()
    assert outside.exists()


def test_limits_from_env() -> None:
    assert MediaLimits.from_env({}).allow_private is False
    assert MediaLimits.from_env({"RELAY_ALLOW_PRIVATE_URLS": "true"}).allow_private is True
    assert MediaLimits.from_env({"RELAY_ALLOW_PRIVATE_URLS": "0", "RELAY_MEDIA_MAX_BYTES": "42"}).max_bytes == 42
    with pytest.raises(ValueError, match="max_bytes"):
        MediaLimits(max_bytes=0)
    assert issubclass(MediaFetchFailed, MediaError)


async def test_s3_media_only_from_allowed_buckets(tmp_path: Path) -> None:
    """``s3://`` media follow the same bucket allow-list as outputs (issue 11, item 10): refused before any read."""
    fetcher = MediaFetcher(MediaLimits(buckets=frozenset({"worker-bucket"})), s3_client=None)
    stager = InputStager(tmp_path, "job-s3", fetcher)
    with pytest.raises(InvalidMedia, match="not one this worker may read"):
        await stager.stage_s3("s3://someone-elses-bucket/secret.png", name="x")
