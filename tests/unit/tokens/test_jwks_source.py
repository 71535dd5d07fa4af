"""Tests for JWKSKeySource: fetching, caching and refetching a JWK Set."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError, TokenError, TokenSignatureError
from gatepass.tokens import DPoPKey, JWKSKeySource, KeyRing

from .conftest import RingFactory

JWKS_URI = "https://broker.example/jwks.json"


class JWKSServer:
    """An in-memory JWKS endpoint behind an httpx.MockTransport."""

    def __init__(self, document: dict[str, Any]) -> None:
        """Serve ``document``."""
        self.document: Any = document
        self.status = 200
        self.requests = 0
        self.fail = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        self.requests += 1
        if self.fail:
            raise httpx.ConnectError("down", request=request)
        return httpx.Response(self.status, json=self.document)

    def source(self, clock: FrozenClock) -> JWKSKeySource:
        """Return a key source fetching from this server."""
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        return JWKSKeySource(JWKS_URI, http=http, clock=clock)


@pytest.fixture
def ring(make_ring: RingFactory) -> KeyRing:
    """An ES256 ring."""
    return make_ring("ES256")


class TestJWKSKeySource:
    """Resource servers' key source."""

    def test_fetches_and_caches(self, ring: KeyRing, clock: FrozenClock) -> None:
        """Keys are fetched once and then served from the cache."""
        server = JWKSServer(ring.jwks())
        source = server.source(clock)
        key, algorithm = source.key_for(ring.signing_kid)
        assert algorithm == "ES256"
        assert key == ring.key_for(ring.signing_kid)[0]
        source.key_for(ring.signing_kid)
        assert server.requests == 1
        assert source.fetch_count == 1

    def test_refreshes_after_interval(self, ring: KeyRing, clock: FrozenClock) -> None:
        """The set is refetched after refresh_interval."""
        server = JWKSServer(ring.jwks())
        source = server.source(clock)
        source.key_for(ring.signing_kid)
        clock.advance(dt.timedelta(minutes=5))
        source.key_for(ring.signing_kid)
        assert server.requests == 2

    def test_refetch_on_unknown_kid(
        self, ring: KeyRing, make_ring: RingFactory, clock: FrozenClock
    ) -> None:
        """An unknown kid triggers a refetch that finds a newly published key."""
        server = JWKSServer(ring.jwks())
        source = server.source(clock)
        source.key_for(ring.signing_kid)
        newer = make_ring("EdDSA")
        server.document = newer.jwks()
        clock.advance(10)
        assert source.key_for(newer.signing_kid)[1] == "EdDSA"
        assert server.requests == 2

    def test_unknown_kid_refetch_is_rate_limited(
        self, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """Forged kids cannot make the source fetch more than once per interval."""
        server = JWKSServer(ring.jwks())
        source = server.source(clock)
        source.key_for(ring.signing_kid)
        for index in range(20):
            with pytest.raises(TokenSignatureError, match="unknown signing key"):
                source.key_for(f"forged-{index}")
        assert server.requests == 1
        clock.advance(10)
        with pytest.raises(TokenSignatureError):
            source.key_for("forged")
        assert server.requests == 2

    def test_failed_refresh_keeps_cached_keys(
        self, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """When the endpoint is down, the cached keys stay usable."""
        server = JWKSServer(ring.jwks())
        source = server.source(clock)
        source.key_for(ring.signing_kid)
        server.fail = True
        clock.advance(dt.timedelta(minutes=6))
        assert source.key_for(ring.signing_kid)
        assert server.requests == 2

    @pytest.mark.parametrize("status", [404, 500])
    def test_unavailable(self, ring: KeyRing, clock: FrozenClock, status: int) -> None:
        """With no keys ever fetched, verification fails as unavailable."""
        server = JWKSServer(ring.jwks())
        server.status = status
        with pytest.raises(TokenError, match="signing keys are unavailable"):
            server.source(clock).key_for(ring.signing_kid)

    def test_not_a_jwk_set(self, ring: KeyRing, clock: FrozenClock) -> None:
        """A document without a keys list is a failed fetch."""
        server = JWKSServer({"keys": "nope"})
        with pytest.raises(TokenError, match="unavailable"):
            server.source(clock).key_for(ring.signing_kid)

    def test_skips_unusable_keys(self, ring: KeyRing, clock: FrozenClock) -> None:
        """Private, encryption, mislabelled and unsupported keys are ignored."""
        good = ring.jwks()["keys"][0]
        rsa = {**DPoPKey.generate("RS256").public_jwk, "kid": "rsa", "alg": "RS256"}
        document = {
            "keys": [
                "junk",
                {**good, "kid": "private", "d": "AAAA"},
                {**good, "kid": "enc", "use": "enc"},
                {**good, "kid": "lying", "alg": "EdDSA"},
                {**good, "kid": ""},
                rsa,
                {"kty": "oct", "k": "AAAA", "kid": "hmac"},
                good,
            ]
        }
        source = JWKSKeySource.from_jwks(document, clock=clock)
        assert source.key_for(good["kid"])[1] == "ES256"
        for kid in ("private", "enc", "lying", "rsa", "hmac"):
            with pytest.raises(TokenSignatureError, match="unknown signing key"):
                source.key_for(kid)

    def test_from_jwks_never_fetches(self, ring: KeyRing, clock: FrozenClock) -> None:
        """A pinned set answers unknown kids without any network."""
        source = JWKSKeySource.from_jwks(ring.jwks(), clock=clock)
        with pytest.raises(TokenSignatureError, match="unknown signing key"):
            source.key_for("other")
        assert source.fetch_count == 0
        source.close()

    def test_from_jwks_refuses_garbage(self, clock: FrozenClock) -> None:
        """A pinned document that is not a JWK Set is a configuration error."""
        with pytest.raises(ConfigurationError, match="not a jwk set"):
            JWKSKeySource.from_jwks({"nope": []}, clock=clock)

    def test_owns_default_client(self, clock: FrozenClock) -> None:
        """A source without a client creates and closes its own."""
        source = JWKSKeySource(JWKS_URI, clock=clock)
        source.close()


class TestJWKSLimits:
    """Oversized key sets are refused."""

    def test_too_large(self, ring: KeyRing, clock: FrozenClock) -> None:
        """A JWKS over 256 KiB is a failed fetch."""
        server = JWKSServer({**ring.jwks(), "padding": "x" * 300_000})
        with pytest.raises(TokenError, match="unavailable"):
            server.source(clock).key_for(ring.signing_kid)
