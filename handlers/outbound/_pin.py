"""The guard's I/O half: resolve a host once, check every address, and build the request for exactly the address
that was checked.

Why connect by IP: there is no second DNS lookup that a rebinding attacker could answer differently, and no custom
transport internals to keep in step with httpcore. The URL's host is replaced by the checked address, ``Host`` keeps
the name, and for https the ``sni_hostname`` extension keeps SNI and certificate verification on the real name.
Clients that send pinned requests must ignore proxies from the environment (``trust_env=False``: a proxy would
make its own, unchecked lookup) and must not follow redirects themselves (each hop is pinned again).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from handlers.outbound._guard import IPAddress, Target, check_url, pick_address, redact_url

__all__ = [
    "AsyncResolver",
    "OutboundGuard",
    "PinnedRequest",
    "Resolver",
    "UnresolvableHost",
    "async_system_resolver",
    "system_resolver",
]

AsyncResolver = Callable[[str, int], Awaitable[list[IPAddress]]]
Resolver = Callable[[str, int], list[IPAddress]]


class UnresolvableHost(Exception):
    """The host did not resolve (a network fault, not a refusal): ``retryable`` when the resolver said "try again"."""

    def __init__(self, message: str, *, source: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.retryable = retryable


def _addresses(infos: list[Any]) -> list[IPAddress]:
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]), None)
    return list(seen)


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """All addresses of ``host`` from the system resolver, in its order, without duplicates (blocking)."""
    return _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


async def async_system_resolver(host: str, port: int) -> list[IPAddress]:
    """:func:`system_resolver` without blocking the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _addresses(list(infos))


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    """What to send for one checked URL: ``url`` names the checked address, ``headers`` and ``extensions`` keep
    the real host for ``Host``, SNI and certificate checks. ``source`` is the URL without secrets, for logs."""

    target: Target
    address: IPAddress
    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]
    source: str


def _pinned(target: Target, address: IPAddress) -> PinnedRequest:
    extensions: dict[str, Any] = {}
    if target.scheme == "https" and target.literal is None:
        extensions["sni_hostname"] = target.host
    return PinnedRequest(
        target=target,
        address=address,
        url=target.url.copy_with(host=str(address)),
        headers={"Host": target.url.netloc.decode("ascii")},
        extensions=extensions,
        source=redact_url(target.url),
    )


def _unresolvable(target: Target, exc: OSError) -> UnresolvableHost:
    retryable = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
    return UnresolvableHost(f"cannot resolve {target.host}: {exc}", source=redact_url(target.url), retryable=retryable)


@dataclass(frozen=True)
class OutboundGuard:
    """The one SSRF guard for every URL a caller gives (media, progress webhook, notify webhook): static checks,
    then every resolved address checked, then a request pinned to the checked address. ``allow_private`` is for
    local stacks and tests only. Raises :class:`UrlRefused` or :class:`UnresolvableHost`."""

    allow_private: bool = False
    resolver: Resolver = field(default=system_resolver)
    async_resolver: AsyncResolver = field(default=async_system_resolver)

    def check(self, url: str | httpx.URL) -> Target:
        """The static checks alone (no DNS): refuse early, before any work is done for the URL."""
        return check_url(url, allow_private=self.allow_private)

    def pin(self, url: str | httpx.URL) -> PinnedRequest:
        target = self.check(url)
        if target.literal is not None:
            return _pinned(target, target.literal)
        try:
            addresses = self.resolver(target.host, target.port)
        except OSError as exc:
            raise _unresolvable(target, exc) from exc
        return _pinned(target, pick_address(target, addresses, allow_private=self.allow_private))

    async def apin(self, url: str | httpx.URL) -> PinnedRequest:
        target = self.check(url)
        if target.literal is not None:
            return _pinned(target, target.literal)
        try:
            addresses = await self.async_resolver(target.host, target.port)
        except OSError as exc:
            raise _unresolvable(target, exc) from exc
        return _pinned(target, pick_address(target, addresses, allow_private=self.allow_private))
