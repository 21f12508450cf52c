"""Connecting to the checked address keeps TLS honest: SNI and certificate verification use the URL's host name,
not the IP the request is sent to. A real TLS server on 127.0.0.1 with a certificate for ``media.test`` only."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from handlers.outbound import IPAddress
from handlers.worker._media import MediaFetchFailed
from handlers.worker._staging import InputStager, MediaFetcher, MediaLimits

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    hosts: list[str]

    def do_GET(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        self.send_response(200)
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, format: str, *args: object) -> None:
        pass


class TlsServer:
    def __init__(self, cert: Path, key: Path) -> None:
        self.sni: list[str | None] = []
        self.hosts: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
        handler = type("H", (_Handler,), {"hosts": self.hosts})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[TlsServer, Path]]:
    cert, key = _self_signed(tmp_path, "media.test")
    server = TlsServer(cert, key)
    try:
        yield server, cert
    finally:
        server.close()


async def _to_loopback(_host: str, _port: int) -> list[IPAddress]:
    return [ipaddress.ip_address("127.0.0.1")]


def _fetcher(ca: Path) -> MediaFetcher:
    context = ssl.create_default_context(cafile=str(ca))
    return MediaFetcher(
        MediaLimits(allow_private=True, read_timeout_s=5, total_timeout_s=10),
        resolver=_to_loopback,
        transport_factory=lambda: httpx.AsyncHTTPTransport(verify=context, retries=0, trust_env=False),
    )


async def test_tls_by_address_keeps_sni_and_hostname_verification(tmp_path: Path, tls: tuple[TlsServer, Path]) -> None:
    server, ca = tls
    stager = InputStager(tmp_path / "input", "job-1", _fetcher(ca))
    staged = await stager.stage_url(f"https://media.test:{server.port}/img.png", name="a.png")
    assert staged.path.read_bytes() == PNG
    assert server.sni == ["media.test"]
    assert server.hosts == [f"media.test:{server.port}"]


async def test_certificate_for_another_name_is_refused_and_not_retryable(
    tmp_path: Path, tls: tuple[TlsServer, Path]
) -> None:
    server, ca = tls
    stager = InputStager(tmp_path / "input", "job-1", _fetcher(ca))
    with pytest.raises(MediaFetchFailed, match="certificate verification failed") as info:
        await stager.stage_url(f"https://other.test:{server.port}/img.png", name="a.png")
    assert info.value.retryable is False
    assert server.sni == ["other.test"]
    assert server.hosts == []
