"""
Where the key fetcher may connect: name resolution and the address policy.

A configured key URL is fetched by the broker, inside the broker's network, so an
attacker who can influence the URL or its DNS answers could make the broker reach
internal services or a cloud metadata endpoint (server-side request forgery). The
fetcher therefore resolves the name **once**, checks every address it resolved to,
connects to the checked address itself and then checks the address the socket is
actually connected to, while TLS still verifies the certificate for the *name*
(httpcore sends the URL's host as SNI and for hostname checking). A DNS answer that
changes between a check and a connection (DNS rebinding) has nothing to change.

Private, loopback, link-local, shared (CGNAT), multicast and reserved ranges and
the well-known metadata addresses are refused unless the issuer's
``allowed_networks`` lists them (OWASP SSRF Prevention Cheat Sheet).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import anyio
import httpcore

from gatepass.errors import FetchError

__all__ = [
    "METADATA_ADDRESSES",
    "AddressPolicy",
    "GuardedBackend",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata services answer unauthenticated requests with credentials:
# AWS/GCP/Azure/OpenStack (169.254.169.254), AWS over IPv6 (fd00:ec2::254), ECS
# task credentials (169.254.170.2), Alibaba (100.100.100.200) and Azure's
# WireServer (168.63.129.16, a global address, so it is named here explicitly).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
    )
)
# RFC 6052 §2.1: the well-known NAT64 prefix embeds an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Resolver(Protocol):
    """Turns a host name into the addresses to connect to."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """
        Resolve a name.

        Args:
            host: the URL's host name (never an address literal).
            port: the port, for resolvers that care.

        Returns:
            The addresses, in preference order; empty when the name has none.
        """
        ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo), without blocking the loop."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """Resolve through getaddrinfo; a failure is an empty answer."""
        try:
            answers = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            # No such name, no resolver, or a name IDNA cannot encode.
            return []
        addresses: list[IPAddress] = []
        for *_, sockaddr in answers:
            # An IPv6 scope ("fe80::1%eth0") is not part of the address.
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        return addresses


class StaticResolver:
    """
    A fixed table of names: for tests, and for pinning hosts in production.

    Args:
        table: host name → addresses (text or address objects).
    """

    def __init__(self, table: Mapping[str, Iterable[str | IPAddress]]) -> None:
        """Parse the table once."""
        self._table = {
            host.lower(): [ipaddress.ip_address(str(a)) for a in addresses]
            for host, addresses in table.items()
        }
        self.queries: list[str] = []

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """Answer from the table and record the query."""
        del port
        self.queries.append(host)
        return list(self._table.get(host.lower(), []))


def _embedded(address: IPAddress) -> IPAddress:
    # An IPv6 address that carries an IPv4 address reaches that IPv4 host, so the
    # IPv4 address is what is checked (::ffff:10.0.0.1 is 10.0.0.1).
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


class AddressPolicy:
    """
    Which addresses the fetcher may connect to.

    Args:
        allowed_networks: networks allowed even though they are not public
            (a cluster's API server, a loopback test server).
    """

    def __init__(self, allowed_networks: Sequence[IPNetwork] = ()) -> None:
        """Keep the allow-list."""
        self._allowed = tuple(allowed_networks)

    def check(self, address: IPAddress) -> None:
        """
        Refuse an address that is not public and not allow-listed.

        Args:
            address: a resolved or connected address.

        Raises:
            FetchError: the address is a metadata endpoint, or private, loopback,
                link-local, shared, multicast or reserved, and not allow-listed.
        """
        target = _embedded(address)
        # Membership across IP versions is simply False.
        if any(target in net or address in net for net in self._allowed):
            return
        if target in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
            raise FetchError("address is a cloud metadata endpoint")
        if (
            not target.is_global
            or target.is_multicast
            or target.is_reserved
            or target.is_unspecified
        ):
            raise FetchError(
                "address is private, loopback or link-local and not allow-listed"
            )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """
    An httpcore network backend that connects only to checked addresses.

    Args:
        resolver: resolves host names, once per connection.
        policy: the address policy.
        loopback_only: refuse anything but loopback addresses (plain http).
        inner: the backend that opens sockets; anyio's by default.
    """

    def __init__(
        self,
        resolver: Resolver,
        policy: AddressPolicy,
        *,
        loopback_only: bool = False,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """Keep the collaborators."""
        self._resolver = resolver
        self._policy = policy
        self._loopback_only = loopback_only
        self._inner = inner or httpcore.AnyIOBackend()
        self.connected: list[IPAddress] = []

    async def _addresses(self, host: str, port: int) -> Sequence[IPAddress]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            return await self._resolver.resolve(host, port)

    def _check(self, address: IPAddress) -> None:
        self._policy.check(address)
        if self._loopback_only and not _embedded(address).is_loopback:
            raise FetchError("plain http is allowed only to a loopback address")

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """
        Resolve once, check every address, connect to the first, check the peer.

        Raises:
            FetchError: the name does not resolve, an address is refused, or the
                socket is connected somewhere else than the checked address.
        """
        addresses = await self._addresses(host, port)
        if not addresses:
            raise FetchError("host name does not resolve")
        # One refused answer refuses the name: a rebinding resolver may mix a
        # public address with an internal one.
        for address in addresses:
            self._check(address)
        address = addresses[0]
        stream = await self._inner.connect_tcp(
            str(address),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        peer = stream.get_extra_info("server_addr")
        try:
            actual = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
        except (TypeError, IndexError, ValueError):
            actual = None
        if actual != address:
            await stream.aclose()
            raise FetchError("connected address differs from the checked address")
        self._check(actual)
        self.connected.append(actual)
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refuse: keys are fetched over TCP only."""
        del path, timeout, socket_options
        raise FetchError("unix sockets are not used for fetching")

    async def sleep(self, seconds: float) -> None:
        """Delegate (httpcore sleeps only between retries, and retries are off)."""
        await self._inner.sleep(seconds)
