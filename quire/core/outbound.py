"""Where Quire may connect on a tenant's behalf: public addresses, and what the operator allows.

A tenant hands Quire URLs to connect to (MCP servers). Left alone, those would reach whatever the
worker hosts reach: their loopback interface, the private network, the cloud's metadata service.
So a host name is resolved, every address it resolves to is classified, and the connection is
refused when any of them is internal and QUIRE_OUTBOUND_ALLOW does not cover it. The check that
counts runs where the connection is made (`quire.core.outbound_transport`): a name that resolved
to a public address at registration and resolves to an internal one later is refused then.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from quire.core.errors import OutboundRefused

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

ALLOW_SETTING = "QUIRE_OUTBOUND_ALLOW"

# Instance metadata services hand out the host's cloud credentials: 169.254.169.254 (AWS, GCP,
# Azure, DigitalOcean, Oracle), AWS's IPv6 one, Alibaba Cloud's, and Azure's WireServer, which
# is not even in a private range.
METADATA = frozenset(
    ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
# RFC 1918, IPv6 unique local addresses, and the site-local range ULAs replaced.
PRIVATE = tuple(
    ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")
)
CGNAT = ip_network("100.64.0.0/10")  # shared address space: a provider's internal network
NAT64 = ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4): where its packets end up."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def internal_kind(address: IPAddress) -> str | None:
    """What kind of internal address this is ("a loopback address", …); None for a public one."""
    if isinstance(address, IPv6Address) and (inner := embedded_ipv4(address)) is not None:
        address = inner
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in PRIVATE):
        return "a private address"
    if address in CGNAT:
        return "a carrier-grade NAT address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def parse_allowlist(value: str) -> tuple[IPNetwork, ...]:
    """The networks of a comma-separated CIDR list ("10.0.0.0/8, fd00::/8"); ValueError names a bad one."""
    networks: list[IPNetwork] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry))  # strict: 10.0.0.1/8 is a typo, not a network
        except ValueError as error:
            raise ValueError(f"{entry!r} is not a CIDR network such as 10.0.0.0/8 ({error})") from None
    return tuple(networks)


def url_target(url: str) -> tuple[str, int]:
    """The host and port an http(s) URL connects to; OutboundRefused for any other URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused(
            "the URL carries credentials (user:password@…); put them in a header instead, "
            "such as Authorization"
        )
    if not parts.hostname:
        raise OutboundRefused("the URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise OutboundRefused("the URL's port is not a number from 1 to 65535") from None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order (an address resolves to itself).

    Raises OSError when it resolves to none.
    """
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise OSError(f"{host} has no IPv4 or IPv6 address")
    return addresses


@dataclass(frozen=True)
class OutboundPolicy:
    """Public addresses, and the internal ones the operator allows (QUIRE_OUTBOUND_ALLOW)."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, value: str) -> OutboundPolicy:
        return cls(allow=parse_allowlist(value))

    def allows(self, address: IPAddress) -> bool:
        forms: list[IPAddress] = [address]
        if isinstance(address, IPv6Address) and (inner := embedded_ipv4(address)) is not None:
            forms.append(inner)
        return any(form in network for form in forms for network in self.allow)

    def refused_kind(self, address: IPAddress) -> str | None:
        """The kind of internal address `address` is ("a loopback address") when it is refused, else None."""
        kind = internal_kind(address)
        return None if kind is None or self.allows(address) else kind

    def check_addresses(self, host: str, addresses: Sequence[IPAddress]) -> None:
        """Raise OutboundRefused unless every address `host` resolved to may be connected to.

        One refused address refuses the name: which address a connection gets is the resolver's
        choice, not Quire's.
        """
        for address in addresses:
            kind = self.refused_kind(address)
            if kind is None:
                continue
            where = f"{address} is {kind}" if _is_address(host) else f"{host} resolves to {address}, {kind}"
            raise OutboundRefused(
                f"{where}; Quire does not connect to internal addresses unless {ALLOW_SETTING} includes it"
            )

    def vetted_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses `host` resolves to, once every one of them passed (OSError if none)."""
        addresses = resolve(host, port)
        self.check_addresses(host, addresses)
        return addresses

    def check_url(self, url: str) -> None:
        """Refuse (OutboundRefused) a URL Quire must not connect to, as far as can be told now.

        A name that does not resolve passes: connecting to it fails on its own, and is checked then.
        """
        host, port = url_target(url)
        with contextlib.suppress(OSError):
            self.vetted_addresses(host, port)


def _is_address(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True
