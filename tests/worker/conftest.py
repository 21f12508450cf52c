"""Fixtures for the worker's I/O tests: moto's S3 in server mode, a fault-injecting proxy in front of it, and the
RunPod emulator the SDK worker tests poll.

``moto_endpoint`` is session-scoped (one in-process server on 127.0.0.1, port 0); each test gets its own bucket
from ``s3_bucket`` so tests never see each other's objects.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from aiohttp import ClientSession, web
from botocore.config import Config

from handlers.local._serving import ServerThread
from tests.local.runpod.conftest import Emulator, serve_emulator

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from tests.worker._relay import AssetServer

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "expect",
}
_bucket_numbers = itertools.count()


def make_s3_client(endpoint_url: str, *, max_attempts: int = 3) -> S3Client:
    """A real boto3 client pointed at a local endpoint, with dummy credentials and path-style addressing."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # moto accepts any credentials
        config=Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=30,
        ),
    )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def runpod() -> Iterator[Emulator]:
    """One RunPod emulator per module: each SDK worker module spawns its own worker against it."""
    with serve_emulator() as emulator:
        yield emulator


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket on the shared moto server."""
    name = f"test-bucket-{next(_bucket_numbers)}"
    make_s3_client(moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_client(moto_endpoint: str) -> S3Client:
    return make_s3_client(moto_endpoint)


@dataclass
class FaultState:
    """What the proxy does next: answer ``fail_next`` requests (or all, with ``fail_always``) with 503 SlowDown."""

    fail_next: int = 0
    #: Only requests whose path and query contain this text are failed (e.g. ``partNumber=`` for parts).
    only: str = ""
    fail_always: bool = False
    failed: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    forwarded: list[tuple[str, str]] = field(default_factory=list)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.state = FaultState()
        self.server = ServerThread(self._app)

    async def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        session: dict[str, ClientSession] = {}

        async def open_session(_app: web.Application) -> None:
            session["s"] = ClientSession(auto_decompress=False)

        async def close_session(_app: web.Application) -> None:
            await session["s"].close()

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            state = self.state
            if (state.fail_always or state.fail_next > 0) and state.only in request.path_qs:
                state.fail_next = max(0, state.fail_next - 1)
                state.failed += 1
                state.refused.append((request.method, request.path_qs))
                xml = (
                    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                    "<Message>Please reduce your request rate.</Message></Error>"
                )
                return web.Response(status=503, text=xml, content_type="application/xml")
            state.forwarded.append((request.method, request.path_qs))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            async with session["s"].request(
                request.method, self.upstream + request.path_qs, headers=headers, data=io.BytesIO(body)
            ) as upstream:
                payload = await upstream.read()
                out_headers: dict[str, Any] = {
                    k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
                }
                return web.Response(status=upstream.status, body=payload, headers=out_headers)

        app.router.add_route("*", "/{tail:.*}", handle)
        app.on_startup.append(open_session)
        app.on_cleanup.append(close_session)
        return app


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """An HTTP proxy in front of moto that can answer 503 SlowDown, for retry tests."""
    proxy = FaultProxy(moto_endpoint)
    with proxy.server:
        yield proxy


@pytest.fixture(scope="module")
def pack_server() -> Iterator[AssetServer]:
    """The characters' placeholder pack assets over HTTP on loopback (``RELAY_ASSET_BASE_URL``)."""
    from tests.worker._relay import serve_pack_assets

    with serve_pack_assets() as served:
        yield served
