"""The SSRF matrix: every outbound URL a caller can name (media, progress webhook, notify webhook) against every
address form, scheme, DNS answer and redirect that must be refused, through each one's real code path.

A case passes when the sink refuses it AND no request ever reached anything but the one public address. A public
control case must get through every sink, so the matrix cannot pass by refusing everything.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from handlers.contract import JobRecord, JobState, Notify, ProgressEvent, ProgressWebhook
from handlers.dispatch._notify import HttpNotifier, NotifyPolicy
from handlers.dispatch._retry import RetryPolicy
from handlers.outbound import IPAddress, OutboundGuard, UrlRefused
from handlers.worker._media import DisallowedUrl
from handlers.worker._progress_sink import WebhookOutbox
from handlers.worker._staging import MediaFetcher, MediaLimits, _Sink
from tests.outbound.test_guard import LITERAL_REFUSED

PUBLIC = "93.184.216.34"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

#: What the test resolver answers for each name; any other name resolves to the public address.
DNS: dict[str, list[str]] = {
    "loopback.example": ["127.0.0.1"],
    "loopback6.example": ["::1"],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.example": ["169.254.169.254"],
    "metadata6.example": ["fd00:ec2::254"],
    "private.example": ["10.1.2.3"],
    "mixed.example": [PUBLIC, "192.168.0.10"],  # one refused answer refuses the name
    "mapped.example": ["::ffff:127.0.0.1"],
    "nat64.example": ["64:ff9b::a9fe:a9fe"],
    "cgnat.example": ["100.64.1.1"],
    "nothing.example": [],
}

SCHEMES = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/_HELO",
    "ftp://public.example/a.png",
    "dict://public.example:11211/",
    "ws://public.example/",
    "ldap://public.example/",
]
USER_INFO = [
    "http://public.example@169.254.169.254/",
    "http://user:pass@public.example/a.png",
    "http://169.254.169.254@public.example/",
    "http://public.example\\@127.0.0.1/",
]
REDIRECT_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:8188/prompt",
    "http://[::1]/",
    "http://0x7f.1/",
    "http://2852039166/",
    "http://loopback.example/",
    "http://metadata.example/",
    "file:///etc/passwd",
]

CASES: list[tuple[str, str, str | None]] = [
    *((f"literal {u}", u, None) for u in LITERAL_REFUSED),
    *((f"scheme {u}", u, None) for u in SCHEMES),
    *((f"user info {u}", u, None) for u in USER_INFO),
    *((f"DNS {name} -> {answer or 'nothing'}", f"http://{name}/a.png", None) for name, answer in DNS.items()),
    *((f"redirect to {t}", "http://public.example/a.png", t) for t in REDIRECT_TARGETS),
]


@dataclass
class Upstream:
    """The network, as a mock transport: records every request; the public host redirects when asked to."""

    redirect_to: str | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.redirect_to is not None:
            return httpx.Response(302, headers={"Location": self.redirect_to})
        return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def reached_only_the_public_address(self) -> bool:
        return all(r.url.host == PUBLIC for r in self.requests)


def _answer(host: str) -> list[IPAddress]:
    return [ipaddress.ip_address(a) for a in DNS.get(host, [PUBLIC])]


async def _aresolve(host: str, port: int) -> list[IPAddress]:
    return _answer(host)


def _resolve(host: str, port: int) -> list[IPAddress]:
    return _answer(host)


async def via_media(url: str, upstream: Upstream) -> bool:
    """True when the media fetcher refused the URL (DisallowedUrl: invalid_input)."""
    fetcher = MediaFetcher(MediaLimits(), resolver=_aresolve, transport_factory=upstream.transport)
    try:
        await fetcher.fetch_url(url, _Sink(io.BytesIO(), 1_000_000, "test"))
    except DisallowedUrl:
        return True
    return False


async def via_progress_webhook(url: str, upstream: Upstream) -> bool:
    """True when the progress webhook refused the URL up front or never delivered an event."""
    hook = ProgressWebhook.model_construct(url=url, secret="s" * 16, min_interval_ms=100)
    try:
        outbox = await WebhookOutbox.open(hook, "job-1", transport=upstream.transport(), resolver=_aresolve)
    except UrlRefused:
        return True
    outbox.offer(ProgressEvent(job_id="job-1", percent=50.0, elapsed_ms=1))
    await outbox.aclose()
    return outbox.sent == 0


async def via_notify_webhook(url: str, upstream: Upstream) -> bool:
    """True when dispatch refused the URL at acceptance or never delivered the notification."""
    policy = NotifyPolicy(guard=OutboundGuard(resolver=_resolve))
    notify = Notify.model_construct(webhook_url=url, webhook_secret="s" * 16, sqs_queue_url=None)
    if policy.problems(notify):
        return True
    delivered: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        response = upstream.handle(request)
        delivered.append(response.status_code)
        return response

    notifier = HttpNotifier(
        sqs=None,
        http=httpx.Client(transport=httpx.MockTransport(handle)),
        retry=RetryPolicy(attempts=1),
        sleep=lambda _s: None,
        policy=policy,
    )
    record = JobRecord(
        job_id="job-1", state=JobState.SUCCEEDED, input_digest="d", created_at_ms=1, updated_at_ms=1, expires_at=1
    )
    notifier.notify(record, notify)
    return not any(code < 300 for code in delivered)


SINKS: dict[str, Callable[[str, Upstream], Any]] = {
    "media": via_media,
    "progress_webhook": via_progress_webhook,
    "notify_webhook": via_notify_webhook,
}


@pytest.mark.parametrize("sink", sorted(SINKS))
@pytest.mark.parametrize(("case", "url", "redirect"), CASES, ids=[c[0] for c in CASES])
async def test_refused(sink: str, case: str, url: str, redirect: str | None) -> None:
    upstream = Upstream(redirect_to=redirect)
    refused = await SINKS[sink](url, upstream)
    assert refused, f"{sink} did not refuse {case}"
    assert upstream.reached_only_the_public_address, [str(r.url) for r in upstream.requests]
    if redirect is not None:
        # Media follow redirects (each hop checked again); webhooks never follow one.
        assert len(upstream.requests) == 1


@pytest.mark.parametrize("sink", sorted(SINKS))
@pytest.mark.parametrize("url", ["http://public.example/a.png", f"https://{PUBLIC}/a.png"])
async def test_public_control_gets_through(sink: str, url: str) -> None:
    upstream = Upstream()
    assert not await SINKS[sink](url, upstream)
    assert upstream.requests and upstream.reached_only_the_public_address
    request = upstream.requests[0]
    assert request.headers["host"] == httpx.URL(url).netloc.decode()  # pinned by address, named by host


def test_the_matrix_covers_every_outbound_url() -> None:
    assert set(SINKS) == {"media", "progress_webhook", "notify_webhook"}
    assert len(CASES) >= 60
