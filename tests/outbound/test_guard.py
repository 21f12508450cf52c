"""The one SSRF guard, pure: schemes, user info, every private range, odd IP spellings, every resolved address."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.outbound import UrlRefused, address_refusal, check_url, parse_ip_literal, pick_address, redact_url

LITERAL_REFUSED = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://2130706433/",  # decimal
    "http://017700000001/",  # octal, one part
    "http://0177.0.0.1/",  # octal dotted
    "http://0x7f.0.0.1/",  # hex dotted
    "http://0x7f000001/",  # hex, one part
    "http://127.0.0.1./",  # trailing dot
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]/",  # NAT64 of loopback
    "http://[2002:7f00:1::]/",  # 6to4 of loopback
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",  # 169.254.169.254 in decimal
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/",  # AWS IMDS over IPv6 (fc00::/7)
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://[fc00::1]/",
    "http://[fdff::1]/",
    "http://[fe80::1]/",
    "http://[febf::1]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://198.18.0.1/",  # benchmarking
    "http://192.0.2.1/",  # documentation
]


@pytest.mark.parametrize("url", LITERAL_REFUSED)
def test_private_literals_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused) as info:
        check_url(url, allow_private=False)
    assert "?" not in (info.value.source or "")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8188/x", "http://[::1]/", "http://10.0.0.1/", "http://0x7f.1/"])
def test_private_literals_pass_when_allowed(url: str) -> None:
    target = check_url(url, allow_private=True)
    assert target.literal is not None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://8.8.8.8/x", "8.8.8.8"),
        ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
        ("http://134744072/", "8.8.8.8"),  # decimal spelling of a public address is still that address
    ],
)
def test_public_literals_pass(url: str, expected: str) -> None:
    target = check_url(url, allow_private=False)
    assert str(target.literal) == expected


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/_HELO",
        "ftp://example.com/a.png",
        "dict://example.com:11211/",
        "ws://example.com/",
        "data:image/png;base64,AAAA",
        "//example.com/a.png",
        "example.com/a.png",
    ],
)
def test_non_http_schemes_are_refused_even_when_private_allowed(url: str) -> None:
    with pytest.raises(UrlRefused, match="scheme"):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com@169.254.169.254/",
        "http://user:pass@example.com/a.png",
        "http://169.254.169.254@example.com/",
        "http://example.com\\@127.0.0.1/",  # backslash: some parsers split here, httpx reads user info
    ],
)
def test_user_info_is_refused(url: str) -> None:
    with pytest.raises(UrlRefused, match="user info"):
        check_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["http://256.1.1.1/", "http://1.2.3.256/", "http://0x1ffffffff/", "http://[::zz]/"])
def test_out_of_range_numeric_hosts_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url(url, allow_private=True)


def test_names_are_left_to_resolution() -> None:
    target = check_url("https://Media.Example.COM:8443/a/b.png?sig=secret", allow_private=False)
    assert (target.host, target.port, target.literal) == ("media.example.com", 8443, None)


def test_idna_host_is_encoded_for_the_resolver() -> None:
    assert check_url("http://bücher.example/x", allow_private=False).host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0300.0250.0.1", "192.168.0.1"),
        ("3232235521", "192.168.0.1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("08.1.1.1", None),  # not valid octal: a name to the resolver, which then fails
    ],
)
def test_parse_ip_literal_follows_inet_aton(host: str, expected: str | None) -> None:
    parsed = parse_ip_literal(host)
    assert (str(parsed) if parsed is not None else None) == expected


def test_every_resolved_address_is_checked() -> None:
    target = check_url("http://rebind.example/x.png", allow_private=False)
    public = ipaddress.ip_address("93.184.216.34")
    assert pick_address(target, [public], allow_private=False) == public
    # One private answer among public ones refuses the name: no hoping the connection picks the public one.
    mixed = [public, ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(UrlRefused, match=r"resolves to 127\.0\.0\.1"):
        pick_address(target, mixed, allow_private=False)
    with pytest.raises(UrlRefused, match="metadata"):
        pick_address(target, [ipaddress.ip_address("169.254.169.254")], allow_private=False)
    with pytest.raises(UrlRefused, match="did not resolve"):
        pick_address(target, [], allow_private=False)
    assert pick_address(target, mixed[::-1], allow_private=True) == ipaddress.ip_address("127.0.0.1")


def test_refusal_reasons_name_the_range() -> None:
    assert address_refusal(ipaddress.ip_address("8.8.8.8")) is None
    assert address_refusal(ipaddress.ip_address("2606:4700:4700::1111")) is None
    assert "loopback" in (address_refusal(ipaddress.ip_address("::ffff:127.0.0.1")) or "")
    assert "private" in (address_refusal(ipaddress.ip_address("192.168.0.1")) or "")
    assert "link-local" in (address_refusal(ipaddress.ip_address("fe80::1")) or "")


def test_redact_url_drops_credentials() -> None:
    shown = redact_url("https://u:p@bucket.s3.amazonaws.com/k.png?X-Amz-Signature=abc#frag")
    assert shown == "https://bucket.s3.amazonaws.com/k.png"
    with pytest.raises(UrlRefused) as info:
        check_url("gopher://h/x?token=secret", allow_private=False)
    assert "secret" not in f"{info.value} {info.value.source}"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789.xXabcdef", min_size=1, max_size=20).filter(lambda s: not s.endswith(".")))
def test_parse_ip_literal_agrees_with_the_c_resolver(host: str) -> None:
    """Whatever the C library reads as an address, the guard reads as the same address (or refuses it)."""
    try:
        expected: str | None = str(ipaddress.IPv4Address(socket.inet_aton(host)))
    except OSError:
        expected = None
    try:
        parsed = parse_ip_literal(host)
    except UrlRefused:
        assert expected is None
        return
    if expected is not None:
        assert str(parsed) == expected
