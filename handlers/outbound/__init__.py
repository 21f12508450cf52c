"""Requests to URLs that callers give: one SSRF guard for every one of them (media, progress webhooks, notify
webhooks), used by the worker and by dispatch alike.

Imports only httpx and the standard library, so dispatch stays cheap to import. The guard refuses schemes other
than http(s), user info, and every loopback, private, link-local, multicast and reserved address, in any spelling
(``127.1``, ``0x7f.0.0.1``, IPv4 inside IPv6), for the literal host and for every address the name resolves to;
the request is then pinned to the checked address, and every redirect hop is checked again.
"""

from handlers.outbound._guard import (
    ALLOWED_SCHEMES,
    IPAddress,
    Target,
    UrlRefused,
    address_refusal,
    check_url,
    parse_ip_literal,
    pick_address,
    redact_url,
)
from handlers.outbound._pin import (
    AsyncResolver,
    OutboundGuard,
    PinnedRequest,
    Resolver,
    UnresolvableHost,
    async_system_resolver,
    system_resolver,
)

__all__ = [
    "ALLOWED_SCHEMES",
    "AsyncResolver",
    "IPAddress",
    "OutboundGuard",
    "PinnedRequest",
    "Resolver",
    "Target",
    "UnresolvableHost",
    "UrlRefused",
    "address_refusal",
    "async_system_resolver",
    "check_url",
    "parse_ip_literal",
    "pick_address",
    "redact_url",
    "system_resolver",
]
