"""Which addresses Quire refuses to connect to on a tenant's behalf, and what the allowlist opens."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from quire.core.errors import ConfigurationError, OutboundRefused
from quire.core.outbound import OutboundPolicy, internal_kind
from quire.core.settings import load_settings
from tests.local_servers import fake_dns

LOOPBACK = "a loopback address"
PRIVATE = "a private address"
LINK_LOCAL = "a link-local address"
METADATA = "a cloud metadata address"
CGNAT = "a carrier-grade NAT address"
UNSPECIFIED = "an unspecified address"
MULTICAST = "a multicast address"
RESERVED = "a reserved address"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", LOOPBACK),
        ("127.255.255.254", LOOPBACK),
        ("10.0.0.1", PRIVATE),
        ("172.16.0.1", PRIVATE),
        ("172.31.255.255", PRIVATE),
        ("192.168.1.1", PRIVATE),
        ("169.254.1.1", LINK_LOCAL),
        ("169.254.169.254", METADATA),
        ("100.100.100.200", METADATA),
        ("100.64.0.1", CGNAT),
        ("100.127.255.255", CGNAT),
        ("0.0.0.0", UNSPECIFIED),
        ("0.1.2.3", RESERVED),  # "this network"
        ("224.0.0.1", MULTICAST),
        ("239.255.255.250", MULTICAST),
        ("240.0.0.1", RESERVED),
        ("255.255.255.255", RESERVED),
        ("192.0.2.10", RESERVED),  # documentation
        ("198.18.0.1", RESERVED),  # benchmarking
    ],
)
def test_internal_ipv4_addresses(address: str, kind: str) -> None:
    assert internal_kind(ip_address(address)) == kind


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("::1", LOOPBACK),
        ("::", UNSPECIFIED),
        ("fe80::1", LINK_LOCAL),
        ("fc00::1", PRIVATE),
        ("fd12:3456:789a::1", PRIVATE),
        ("fec0::1", PRIVATE),  # the old site-local range
        ("fd00:ec2::254", METADATA),
        ("ff02::1", MULTICAST),
        ("2001:db8::1", RESERVED),  # documentation
        ("100::1", RESERVED),  # discard
    ],
)
def test_internal_ipv6_addresses(address: str, kind: str) -> None:
    assert internal_kind(ip_address(address)) == kind


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("::ffff:127.0.0.1", LOOPBACK),
        ("::ffff:10.1.2.3", PRIVATE),
        ("::ffff:169.254.169.254", METADATA),
        ("::ffff:100.100.100.200", METADATA),
        ("::ffff:100.64.0.1", CGNAT),
        ("::ffff:0.0.0.0", UNSPECIFIED),
        ("64:ff9b::a9fe:a9fe", METADATA),  # NAT64 of 169.254.169.254
        ("64:ff9b::7f00:1", LOOPBACK),  # NAT64 of 127.0.0.1
        ("2002:a9fe:a9fe::1", METADATA),  # 6to4 of 169.254.169.254
        ("2002:c0a8:0101::1", PRIVATE),  # 6to4 of 192.168.1.1
        ("::127.0.0.1", RESERVED),  # IPv4-compatible, long deprecated
    ],
)
def test_ipv4_inside_ipv6_is_judged_by_its_ipv4_address(address: str, kind: str) -> None:
    assert internal_kind(ip_address(address)) == kind


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_not_internal(address: str) -> None:
    assert internal_kind(ip_address(address)) is None


def test_the_allowlist_opens_what_it_covers_in_every_form() -> None:
    policy = OutboundPolicy.from_setting("10.0.0.0/8, 127.0.0.1/32,fd00::/8")
    for address in ("10.1.2.3", "::ffff:10.1.2.3", "127.0.0.1", "::ffff:127.0.0.1", "fd00::5"):
        assert policy.refused_kind(ip_address(address)) is None, address
    for address in ("127.0.0.2", "::1", "192.168.1.1", "169.254.169.254", "::ffff:169.254.169.254"):
        assert policy.refused_kind(ip_address(address)) is not None, address
    assert OutboundPolicy().refused_kind(ip_address("8.8.8.8")) is None


def test_a_url_is_judged_by_every_address_its_name_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(
        monkeypatch,
        {"public.quire.test": ["8.8.8.8,2606:4700::1111"], "mixed.quire.test": ["8.8.8.8,10.0.0.7"]},
    )
    OutboundPolicy().check_url("https://public.quire.test/mcp")
    with pytest.raises(
        OutboundRefused, match=r"mixed\.quire\.test resolves to 10\.0\.0\.7, a private address"
    ):
        OutboundPolicy().check_url("https://mixed.quire.test/mcp")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://user:secret@example.com/mcp", "put them in a header"),
        ("http://token@example.com/mcp", "put them in a header"),
        ("ftp://example.com/mcp", "http:// or https://"),
        ("http:///mcp", "no host"),
    ],
)
def test_malformed_urls_are_refused_before_anything_is_resolved(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused, match=reason) as refused:
        OutboundPolicy().check_url(url)
    assert "secret" not in str(refused.value)


def test_the_allowlist_setting_takes_cidrs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUIRE_OUTBOUND_ALLOW", "10.0.0.0/8, 192.168.4.0/24,::1/128")
    assert load_settings().outbound_allow == "10.0.0.0/8, 192.168.4.0/24,::1/128"
    for bad in ("intranet", "10.0.0.1/8", "10.0.0.0/33"):
        monkeypatch.setenv("QUIRE_OUTBOUND_ALLOW", bad)
        with pytest.raises(ConfigurationError, match=f"QUIRE_OUTBOUND_ALLOW: .*{bad}"):
            load_settings()
