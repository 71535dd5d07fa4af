"""
Workload identity federation against real local key servers (issue 11).

Keys are generated in the test and served by a real HTTP server on 127.0.0.1 (or
written as a SPIFFE bundle served the same way); tokens are minted with them for
each preset. A second local server plays the attacker a token points to; its
request log proves that gatepass never contacts it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.unit.identity.jose import IssuerKey
from tests.unit.identity.kit import ISSUER_FACTORIES, TestIssuer, identity_settings

from gatepass.clock import FrozenClock
from gatepass.errors import FetchError, InvalidGrantError
from gatepass.identity import (
    JWT_TOKEN_TYPE,
    DocumentFetcher,
    FederatedVerifier,
    FetchLimits,
    StaticResolver,
    SystemResolver,
)
from gatepass.identity.addresses import IPAddress

from .key_servers import LOOPBACK, KeyServer, Route, make_certificates

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEYS_PATH = "/keys"
ATTACKER_PATH = "/attacker-keys"


@pytest.fixture
def anyio_backend() -> str:
    """The broker's event loop."""
    return "asyncio"


@pytest.fixture
def clock() -> FrozenClock:
    """Token time; fetch deadlines run on real time."""
    return FrozenClock(dt.datetime.now(dt.UTC))  # noqa: TID251 - tokens meet real servers


@pytest.fixture
def server() -> Iterator[KeyServer]:
    """The issuer's key server."""
    running = KeyServer().start()
    yield running
    running.stop()


@pytest.fixture
def attacker() -> Iterator[KeyServer]:
    """A server only a token names; it must never be contacted."""
    running = KeyServer().start()
    yield running
    running.stop()


@pytest.fixture(scope="module", params=sorted(ISSUER_FACTORIES))
def issuer(request: pytest.FixtureRequest) -> TestIssuer:
    """One test issuer per preset."""
    return ISSUER_FACTORIES[request.param]()


def verifier_for(
    issuer: TestIssuer, server: KeyServer, clock: FrozenClock
) -> FederatedVerifier:
    """A verifier whose only issuer fetches its keys from the local server."""
    source = "bundle_endpoint" if issuer.bundle else "jwks_uri"
    table = issuer.table(
        **{source: server.url(KEYS_PATH)},
        allow_http_loopback=True,
        allowed_networks=["127.0.0.1/32"],
    )
    return FederatedVerifier.from_settings(identity_settings(table), clock=clock)


async def refused(verifier: FederatedVerifier, token: str, message: str) -> None:
    """Assert an invalid_grant refusal with this message."""
    with pytest.raises(InvalidGrantError, match=message) as info:
        await verifier.verify(token, JWT_TOKEN_TYPE)
    assert info.value.code == "invalid_grant"


class TestFederationOverHTTP:
    """Each preset, with keys fetched from a real server."""

    async def test_preset_end_to_end(
        self,
        issuer: TestIssuer,
        server: KeyServer,
        attacker: KeyServer,
        clock: FrozenClock,
    ) -> None:
        """A good token maps; bad ones are invalid_grant; the attacker hears nothing."""
        server.serve_json(KEYS_PATH, issuer.key_document())
        attacker.serve_json(
            ATTACKER_PATH, issuer.key_document([IssuerKey.generate("evil", "ES256")])
        )
        verifier = verifier_for(issuer, server, clock)
        identity = await verifier.verify(issuer.token(clock), JWT_TOKEN_TYPE)
        assert (identity.name, identity.tenant, identity.labels) == (
            issuer.expected_name,
            "acme",
            issuer.expected_labels,
        )
        evil_url = attacker.url(ATTACKER_PATH)
        cases: list[tuple[str, str]] = [
            (issuer.token(clock, aud="https://other.example"), "audience"),
            (issuer.token(clock, lifetime=30 * 86_400), "lifetime exceeds the cap"),
            (issuer.token(clock, header={"jku": evil_url}), "names or carries a key"),
            (issuer.token(clock, header={"x5u": evil_url}), "names or carries a key"),
            (
                issuer.token(clock, header={"jku": evil_url, "kid": "evil"}),
                "names or carries a key",
            ),
            (issuer.token(clock, header={"alg": "HS256"}), "not pinned"),
            (issuer.token(clock, header={"alg": "none"}), "not pinned"),
            (unknown_issuer_token(issuer, clock), "not trusted"),
            (unmatched_token(issuer, clock), "no claim rule"),
        ]
        if issuer.bundle:
            cases.append(
                (issuer.token(clock, sub="spiffe://example.org/a/../b"), "spiffe id")
            )
        for token, message in cases:
            await refused(verifier, token, message)
        expired = issuer.token(clock)
        clock.advance(issuer.lifetime + 31)
        await refused(verifier, expired, "expired")
        assert attacker.requests == []
        assert server.paths() == [KEYS_PATH]

    async def test_token_signed_by_a_removed_key(
        self, issuer: TestIssuer, server: KeyServer, clock: FrozenClock
    ) -> None:
        """After the issuer drops a key and the keys refresh, its tokens are refused."""
        server.serve_json(KEYS_PATH, issuer.key_document())
        verifier = verifier_for(issuer, server, clock)
        await verifier.refresh_due()
        retired = issuer.keys[1]
        assert (
            await verifier.verify(issuer.token(clock, key=retired), JWT_TOKEN_TYPE)
        ).name
        server.serve_json(KEYS_PATH, issuer.key_document([issuer.keys[0]]))
        clock.advance(dt.timedelta(minutes=5))
        await verifier.refresh_due()
        await refused(verifier, issuer.token(clock, key=retired), "not in the key set")
        assert (await verifier.verify(issuer.token(clock), JWT_TOKEN_TYPE)).name
        # The unknown kid did not trigger a refetch within the minute.
        assert server.paths() == [KEYS_PATH, KEYS_PATH]

    async def test_unknown_kid_refetches_once_per_minute(
        self, server: KeyServer, clock: FrozenClock
    ) -> None:
        """A key rotated in is found by one refetch; forged kids cost nothing more."""
        github = ISSUER_FACTORIES["github-actions"]()
        server.serve_json(KEYS_PATH, github.key_document([github.keys[0]]))
        verifier = verifier_for(github, server, clock)
        assert (await verifier.verify(github.token(clock), JWT_TOKEN_TYPE)).name
        for index in range(3):
            forged = github.token(
                clock, header={"kid": f"forged-{index}"}, jti=f"f{index}"
            )
            await refused(verifier, forged, "not in the key set")
        assert len(server.requests) == 1
        server.serve_json(KEYS_PATH, github.key_document())
        clock.advance(61)
        rotated = github.token(clock, key=github.keys[1], jti="rotated")
        assert (await verifier.verify(rotated, JWT_TOKEN_TYPE)).name
        assert len(server.requests) == 2

    async def test_failed_refresh_keeps_the_last_good_keys_and_says_so(
        self, server: KeyServer, clock: FrozenClock
    ) -> None:
        """A key server outage is reported stale, then unavailable after the bound."""
        k8s = ISSUER_FACTORIES["kubernetes"]()
        server.serve_json(KEYS_PATH, k8s.key_document())
        verifier = verifier_for(k8s, server, clock)
        await verifier.refresh_due()
        server.routes[KEYS_PATH] = Route(status=503, body=b"down")
        clock.advance(dt.timedelta(minutes=5))
        await verifier.refresh_due()
        health = verifier.health()["prod-cluster"]
        assert (health.state, health.last_error) == (
            "stale",
            "key server answered http 503",
        )
        assert (await verifier.verify(k8s.token(clock), JWT_TOKEN_TYPE)).name
        clock.advance(dt.timedelta(hours=1))
        await refused(verifier, k8s.token(clock), "unavailable")
        assert verifier.health()["prod-cluster"].state == "unavailable"


def unknown_issuer_token(issuer: TestIssuer, clock: FrozenClock) -> str:
    """A token of the same shape from an issuer nobody configured."""
    if issuer.bundle:
        return issuer.token(clock, sub="spiffe://evil.example/ns/agents/sa/triage")
    return issuer.token(clock, iss="https://evil.example")


def unmatched_token(issuer: TestIssuer, clock: FrozenClock) -> str:
    """A token from the right issuer that no claim rule accepts."""
    overrides: dict[str, dict[str, Any]] = {
        "kubernetes": {"kubernetes.io": {"namespace": "kube-system"}},
        "github-actions": {"repository_owner_id": "666"},
        "gitlab-ci": {"ref_type": "tag"},
        "spire": {"sub": "spiffe://example.org/ns/other/sa/x"},
    }
    return issuer.token(clock, **overrides[issuer.preset])


class RebindingResolver:
    """Answers a loopback address first and an internal one afterwards."""

    def __init__(self, answers: Sequence[str]) -> None:
        """Answer from ``answers`` in turn."""
        self.answers = [ipaddress.ip_address(a) for a in answers]
        self.queries = 0

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """Answer the next address."""
        del host, port
        answer = self.answers[min(self.queries, len(self.answers) - 1)]
        self.queries += 1
        return [answer]


def fetcher(**kwargs: Any) -> DocumentFetcher:
    """A fetcher allowed to reach the local plain-http server."""
    kwargs.setdefault("allowed_networks", LOOPBACK)
    kwargs.setdefault("allow_http_loopback", True)
    return DocumentFetcher(**kwargs)


class TestDocumentFetcher:
    """The fetcher's refusals, each against a real local server."""

    async def test_fetches_a_document(self, server: KeyServer) -> None:
        """The allow-listed loopback case works over plain http."""
        server.serve_json(KEYS_PATH, {"keys": []})
        assert await fetcher().fetch(server.url(KEYS_PATH)) == b'{"keys": []}'

    async def test_redirect_is_refused(
        self, server: KeyServer, attacker: KeyServer
    ) -> None:
        """A 302 to another server is an error; the target is never contacted."""
        attacker.serve_json(ATTACKER_PATH, {"keys": []})
        server.routes[KEYS_PATH] = Route(
            status=302, headers={"Location": attacker.url(ATTACKER_PATH)}
        )
        with pytest.raises(FetchError, match="redirect refused"):
            await fetcher().fetch(server.url(KEYS_PATH))
        assert attacker.requests == []

    @pytest.mark.parametrize("declared", [True, False])
    async def test_oversize_document_is_refused(
        self, server: KeyServer, declared: bool
    ) -> None:
        """A body over 64 KiB is refused, declared or streamed without a length."""
        server.routes[KEYS_PATH] = Route(body=b" " * (64 * 1024 + 1), length=declared)
        with pytest.raises(FetchError, match="larger than 65536 bytes"):
            await fetcher().fetch(server.url(KEYS_PATH))

    async def test_document_at_the_cap_is_read(self, server: KeyServer) -> None:
        """Exactly 64 KiB is still accepted."""
        server.routes[KEYS_PATH] = Route(body=b" " * (64 * 1024), length=False)
        assert len(await fetcher().fetch(server.url(KEYS_PATH))) == 64 * 1024

    async def test_slow_server_is_cut_off(self, server: KeyServer) -> None:
        """A server that stalls mid-body fails the fetch at its deadline."""
        server.routes[KEYS_PATH] = Route(stall=True)
        limits = FetchLimits(timeout=dt.timedelta(milliseconds=300))
        with pytest.raises(FetchError, match="deadline"):
            await fetcher(limits=limits).fetch(server.url(KEYS_PATH))

    async def test_error_status_is_refused(self, server: KeyServer) -> None:
        """Only 200 is a document."""
        with pytest.raises(FetchError, match="answered http 404"):
            await fetcher().fetch(server.url("/missing"))

    @pytest.mark.parametrize("answer", ["127.0.0.1", "10.20.30.40", "169.254.169.254"])
    async def test_private_addresses_are_refused(
        self, server: KeyServer, answer: str
    ) -> None:
        """A name resolving inside, without an allow-list entry, is never connected."""
        server.serve_json(KEYS_PATH, {"keys": []})
        resolver = StaticResolver({"keys.test": [answer]})
        quiet = DocumentFetcher(resolver=resolver, allow_http_loopback=True)
        with pytest.raises(FetchError, match=r"not allow-listed|metadata"):
            await quiet.fetch(server.url(KEYS_PATH, host="keys.test"))
        assert server.requests == []

    async def test_allow_listed_loopback_name_connects_by_address(
        self, server: KeyServer
    ) -> None:
        """An allowed name is fetched from its checked address, sent with its Host."""
        server.serve_json(KEYS_PATH, {"keys": []})
        resolver = StaticResolver({"keys.test": ["127.0.0.1"]})
        await fetcher(resolver=resolver).fetch(server.url(KEYS_PATH, host="keys.test"))
        assert server.requests[0].host == f"keys.test:{server.port}"
        assert resolver.queries == ["keys.test"]

    async def test_dns_rebinding_has_nothing_to_rebind(self, server: KeyServer) -> None:
        """The name is resolved once per fetch; the checked answer is the one used."""
        server.serve_json(KEYS_PATH, {"keys": []})
        resolver = RebindingResolver(["127.0.0.1", "10.0.0.1"])
        await fetcher(resolver=resolver).fetch(server.url(KEYS_PATH, host="keys.test"))
        assert resolver.queries == 1
        assert len(server.requests) == 1
        with pytest.raises(FetchError, match="not allow-listed"):
            await fetcher(resolver=resolver).fetch(
                server.url(KEYS_PATH, host="keys.test")
            )
        assert len(server.requests) == 1


class TestSystemResolver:
    """The default resolver, on the machine's own names."""

    async def test_localhost_resolves_to_loopback_only(self) -> None:
        """Getaddrinfo answers localhost with loopback addresses, deduplicated."""
        addresses = await SystemResolver().resolve("localhost", 80)
        assert addresses
        assert all(address.is_loopback for address in addresses)
        assert len(set(addresses)) == len(addresses)


class TestFetchOverTLS:
    """https with certificate checks against the name, connecting to the address."""

    @pytest.fixture
    def tls_server(self, tmp_path: Path) -> Iterator[tuple[KeyServer, Path, list[str]]]:
        """An https key server with a certificate for keys.test."""
        certificates = make_certificates(tmp_path, "keys.test")
        sni: list[str] = []
        running = KeyServer(tls=certificates.server_context(sni)).start()
        running.serve_json(KEYS_PATH, {"keys": []})
        yield running, certificates.ca_file, sni
        running.stop()

    async def test_https_by_name_with_sni(
        self, tls_server: tuple[KeyServer, Path, list[str]]
    ) -> None:
        """The certificate is verified for the name, sent as SNI, on the checked IP."""
        server, ca_file, sni = tls_server
        resolver = StaticResolver({"keys.test": ["127.0.0.1"]})
        secure = DocumentFetcher(
            resolver=resolver, allowed_networks=LOOPBACK, ca_file=ca_file
        )
        assert (
            await secure.fetch(server.url(KEYS_PATH, host="keys.test"))
            == b'{"keys": []}'
        )
        assert sni == ["keys.test"]

    async def test_certificate_for_another_name_is_refused(
        self, tls_server: tuple[KeyServer, Path, list[str]]
    ) -> None:
        """Reaching the same address under another name fails verification."""
        server, ca_file, _ = tls_server
        resolver = StaticResolver({"other.test": ["127.0.0.1"]})
        secure = DocumentFetcher(
            resolver=resolver, allowed_networks=LOOPBACK, ca_file=ca_file
        )
        with pytest.raises(FetchError, match="connection to the key server failed"):
            await secure.fetch(server.url(KEYS_PATH, host="other.test"))
        assert server.requests == []

    async def test_untrusted_ca_is_refused(
        self, tls_server: tuple[KeyServer, Path, list[str]]
    ) -> None:
        """Without the issuer's CA, the public trust store does not know the server."""
        server, _, _ = tls_server
        resolver = StaticResolver({"keys.test": ["127.0.0.1"]})
        public = DocumentFetcher(resolver=resolver, allowed_networks=LOOPBACK)
        with pytest.raises(FetchError, match="connection to the key server failed"):
            await public.fetch(server.url(KEYS_PATH, host="keys.test"))
