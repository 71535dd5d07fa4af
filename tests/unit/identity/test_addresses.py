"""Tests for the address policy and the guarded network backend (no sockets)."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpcore
import pytest

from gatepass.errors import FetchError
from gatepass.identity import AddressPolicy, StaticResolver
from gatepass.identity.addresses import GuardedBackend, IPAddress
from gatepass.identity.fetch import check_fetch_url

pytestmark = pytest.mark.anyio


class FakeStream(httpcore.AsyncNetworkStream):
    """A stream that only reports the peer it is 'connected' to."""

    def __init__(self, peer: Any) -> None:
        """Pretend to be connected to ``peer``."""
        self.peer = peer
        self.closed = False

    def get_extra_info(self, info: str) -> Any:
        """Answer server_addr."""
        return self.peer if info == "server_addr" else None

    async def aclose(self) -> None:
        """Remember the close."""
        self.closed = True


class FakeBackend(httpcore.AsyncNetworkBackend):
    """Records where it was asked to connect; answers with a chosen peer."""

    def __init__(self, peer: Any = None) -> None:
        """Answer with ``peer`` (default: the address asked for)."""
        self.peer = peer
        self.asked: list[str] = []
        self.streams: list[FakeStream] = []
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        """Record the wait instead of waiting."""
        self.slept.append(seconds)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        """Record the host and hand back a fake stream."""
        del timeout, local_address, socket_options
        self.asked.append(host)
        stream = FakeStream(self.peer if self.peer is not None else (host, port))
        self.streams.append(stream)
        return stream


def guarded() -> GuardedBackend:
    """A backend with an empty resolver and the default policy."""
    return GuardedBackend(StaticResolver({}), AddressPolicy(), inner=FakeBackend())


def address(text: str) -> IPAddress:
    """Parse an address."""
    return ipaddress.ip_address(text)


class TestAddressPolicy:
    """Only public addresses, or allow-listed ones, may be reached."""

    @pytest.mark.parametrize(
        "text",
        [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "0.0.0.0",  # noqa: S104 - an address under test, not a bind
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ],
    )
    def test_non_public_addresses_are_refused(self, text: str) -> None:
        """Private, loopback, link-local, shared, multicast and reserved are refused."""
        with pytest.raises(FetchError, match="not allow-listed"):
            AddressPolicy().check(address(text))

    @pytest.mark.parametrize(
        "text",
        ["169.254.169.254", "169.254.170.2", "fd00:ec2::254", "168.63.129.16"],
    )
    def test_metadata_endpoints_are_refused(self, text: str) -> None:
        """Cloud metadata addresses are named in the refusal."""
        with pytest.raises(FetchError, match="metadata"):
            AddressPolicy().check(address(text))

    def test_public_addresses_pass(self) -> None:
        """A global address is allowed without any list."""
        AddressPolicy().check(address("140.82.112.3"))
        AddressPolicy().check(address("2606:4700::1111"))

    def test_allow_list_admits_exactly_its_networks(self) -> None:
        """An allow-listed network is reachable; its neighbours are not."""
        policy = AddressPolicy([ipaddress.ip_network("10.96.0.1/32")])
        policy.check(address("10.96.0.1"))
        policy.check(address("::ffff:10.96.0.1"))
        with pytest.raises(FetchError):
            policy.check(address("10.96.0.2"))


class TestGuardedBackend:
    """Resolve once, check every answer, connect to the checked address."""

    async def test_connects_to_the_resolved_address_by_ip(self) -> None:
        """The socket layer is given the checked IP, never the name."""
        resolver = StaticResolver({"keys.example": ["140.82.112.3"]})
        inner = FakeBackend()
        backend = GuardedBackend(resolver, AddressPolicy(), inner=inner)
        await backend.connect_tcp("keys.example", 443)
        assert inner.asked == ["140.82.112.3"]
        assert resolver.queries == ["keys.example"]
        assert backend.connected == [address("140.82.112.3")]

    @pytest.mark.parametrize("answer", ["127.0.0.1", "10.0.0.5", "169.254.169.254"])
    async def test_name_resolving_to_internal_address_is_refused(
        self, answer: str
    ) -> None:
        """A public-looking name that resolves inside is refused before connecting."""
        inner = FakeBackend()
        backend = GuardedBackend(
            StaticResolver({"keys.example": [answer]}), AddressPolicy(), inner=inner
        )
        with pytest.raises(FetchError):
            await backend.connect_tcp("keys.example", 443)
        assert inner.asked == []

    async def test_one_internal_answer_refuses_the_name(self) -> None:
        """A mix of public and internal answers (a rebinding resolver) is refused."""
        inner = FakeBackend()
        resolver = StaticResolver({"keys.example": ["140.82.112.3", "10.0.0.5"]})
        backend = GuardedBackend(resolver, AddressPolicy(), inner=inner)
        with pytest.raises(FetchError, match="not allow-listed"):
            await backend.connect_tcp("keys.example", 443)
        assert inner.asked == []

    async def test_peer_other_than_the_checked_address_is_refused(self) -> None:
        """If the socket ends up elsewhere, the connection is closed and refused."""
        inner = FakeBackend(peer=("10.0.0.5", 443))
        resolver = StaticResolver({"keys.example": ["140.82.112.3"]})
        backend = GuardedBackend(resolver, AddressPolicy(), inner=inner)
        with pytest.raises(FetchError, match="connected address differs"):
            await backend.connect_tcp("keys.example", 443)
        assert inner.streams[0].closed

    async def test_unknown_peer_is_refused(self) -> None:
        """A stream that cannot say where it is connected is refused."""
        inner = FakeBackend(peer=("not an address",))
        backend = GuardedBackend(
            StaticResolver({"k.example": ["140.82.112.3"]}),
            AddressPolicy(),
            inner=inner,
        )
        with pytest.raises(FetchError, match="connected address differs"):
            await backend.connect_tcp("k.example", 443)

    async def test_unresolvable_name_is_refused(self) -> None:
        """A name without addresses is a fetch error."""
        backend = GuardedBackend(
            StaticResolver({}), AddressPolicy(), inner=FakeBackend()
        )
        with pytest.raises(FetchError, match="does not resolve"):
            await backend.connect_tcp("nowhere.example", 443)

    async def test_address_literal_skips_the_resolver_but_not_the_policy(self) -> None:
        """An IP in the URL is checked like a resolved one."""
        resolver = StaticResolver({})
        backend = GuardedBackend(resolver, AddressPolicy(), inner=FakeBackend())
        with pytest.raises(FetchError, match="metadata"):
            await backend.connect_tcp("169.254.169.254", 80)
        assert resolver.queries == []

    async def test_plain_http_only_to_loopback(self) -> None:
        """With loopback_only, an allowed non-loopback address is still refused."""
        policy = AddressPolicy([ipaddress.ip_network("10.0.0.0/8")])
        backend = GuardedBackend(
            StaticResolver({}), policy, loopback_only=True, inner=FakeBackend()
        )
        with pytest.raises(FetchError, match="loopback"):
            await backend.connect_tcp("10.0.0.1", 80)

    async def test_sleep_is_delegated(self) -> None:
        """Httpcore's retry wait goes to the socket layer (retries are off anyway)."""
        inner = FakeBackend()
        await GuardedBackend(StaticResolver({}), AddressPolicy(), inner=inner).sleep(0)
        assert inner.slept == [0]

    async def test_unix_sockets_are_never_used(self) -> None:
        """The fetcher speaks TCP only."""
        backend = GuardedBackend(
            StaticResolver({}), AddressPolicy(), inner=FakeBackend()
        )
        with pytest.raises(FetchError, match="unix"):
            await backend.connect_unix_socket("/run/x.sock")


class TestCheckFetchURL:
    """URLs are https (or allowed loopback http), without user info or fragment."""

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("http://keys.example/jwks", "https"),
            ("ftp://keys.example/jwks", "https"),
            ("file:///etc/passwd", "https"),
            ("https:///jwks", "no host"),
            ("https://user:pw@keys.example/jwks", "user info"),
            ("https://keys.example/jwks#x", "fragment"),
            ("https://keys.example:99999/", "not valid"),
            ("https://kéys.example/", "ascii"),
        ],
    )
    def test_refused_urls(self, url: str, message: str) -> None:
        """Each bad URL names its rule."""
        with pytest.raises(FetchError, match=message):
            check_fetch_url(url)

    def test_http_only_when_allowed(self) -> None:
        """Plain http passes the URL check only with the loopback allowance."""
        check_fetch_url("http://127.0.0.1:8081/bundle", allow_http_loopback=True)
        check_fetch_url("https://keys.example/jwks")
