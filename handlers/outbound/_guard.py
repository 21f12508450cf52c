"""The SSRF guard, pure: which URLs and which resolved addresses may be requested. No DNS, no sockets.

The I/O side (``_pin``) resolves a host once, passes every address through :func:`pick_address`, and then
connects to exactly the address that was checked, so a DNS answer that changes between check and connect
(rebinding) never reaches a private address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

import httpx

__all__ = [
    "ALLOWED_SCHEMES",
    "IPAddress",
    "Target",
    "UrlRefused",
    "address_refusal",
    "check_url",
    "parse_ip_literal",
    "pick_address",
    "redact_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Only plain web fetches: file://, gopher://, ftp://, dict:// and friends are the classic SSRF levers.
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})


class UrlRefused(Exception):
    """The guard refuses a URL: its scheme, user info, host, or an address its host resolves to. ``source`` is the
    URL with secrets removed (user info, query, fragment)."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source


_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")


def redact_url(url: httpx.URL | str) -> str:
    """The URL without user info, query or fragment: presigned URLs carry credentials in the query."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<unparseable URL>"


def _inet_aton_part(part: str) -> int | None:
    if not part:
        return None
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part[0] == "0":
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` denotes when it is an IP literal in any form a C resolver accepts, else ``None``.

    inet_aton reads ``127.1``, ``2130706433``, ``0x7f.0.0.1`` and ``0177.0.0.1`` all as 127.0.0.1, and so does
    getaddrinfo; checking only dotted quads would let those through. Raises :class:`UrlRefused` for a numeric
    host that is out of range, since no resolver would treat it as a name either.
    """
    text = host.strip("[]")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError as exc:
            raise UrlRefused(f"host {host!r} is not a valid IPv6 address") from exc
    parts = text.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]  # a trailing dot is still the same address for the resolver
    if not 1 <= len(parts) <= 4:
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    *head, last = nums
    if any(n > 0xFF for n in head) or last >= 1 << (8 * (5 - len(nums))):
        raise UrlRefused(f"host {host!r} is a numeric address out of range")
    value = 0
    for n in head:
        value = (value << 8) | n
    value = (value << (8 * (5 - len(nums)))) | last
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    # IPv4-compatible (::a.b.c.d, deprecated) still routes to a.b.c.d on some stacks.
    if int(ip) >> 32 == 0 and int(ip) > 0xFFFF:
        return ipaddress.IPv4Address(int(ip))
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why the worker must not connect to ``ip``, or ``None`` when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = address_refusal(inner)
            if reason is not None:
                return f"{reason} (embedded in {ip})"
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address (cloud metadata lives here)"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a shared (carrier-grade NAT) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (not ip.is_global, "not a globally routable address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the static checks: what to resolve (or the literal to use) and where to connect."""

    url: httpx.URL
    scheme: str
    #: The ASCII (IDNA-encoded) host, as the resolver and the TLS handshake must see it.
    host: str
    port: int
    #: Set when the host is itself an address; then no resolution happens.
    literal: IPAddress | None


def check_url(url: str | httpx.URL, *, allow_private: bool) -> Target:
    """Static checks of one URL (every redirect hop gets them again): scheme, user info, host, literal addresses."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from exc
    shown = redact_url(parsed)
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UrlRefused(f"scheme {parsed.scheme or '(none)'!r} is not allowed; use http or https", source=shown)
    if parsed.userinfo:
        # ``http://trusted.example@169.254.169.254/`` reads as one host and connects to another.
        raise UrlRefused("URLs with user info ('user@host') are not allowed", source=shown)
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise UrlRefused("URL has no host", source=shown)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        literal = parse_ip_literal(host)
    except UrlRefused as exc:
        raise UrlRefused(exc.message, source=shown) from exc
    if literal is not None and not allow_private:
        reason = address_refusal(literal)
        if reason is not None:
            raise UrlRefused(f"host {host} is {reason}", source=shown)
    return Target(url=parsed, scheme=parsed.scheme, host=host, port=port, literal=literal)


def pick_address(target: Target, addresses: list[IPAddress], *, allow_private: bool) -> IPAddress:
    """The address to connect to, after checking **every** address the name resolved to.

    One refused address refuses the name: an attacker who controls DNS could otherwise mix a public and a private
    answer and hope the connection picks the private one.
    """
    if not addresses:
        raise UrlRefused(f"host {target.host} did not resolve to any address", source=redact_url(target.url))
    if not allow_private:
        for ip in addresses:
            reason = address_refusal(ip)
            if reason is not None:
                raise UrlRefused(f"host {target.host} resolves to {ip}, {reason}", source=redact_url(target.url))
    return addresses[0]
