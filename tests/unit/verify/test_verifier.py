"""Tests for ResourceVerifier: every way a request's credentials are refused."""

from __future__ import annotations

import datetime as dt

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import (
    ConfigurationError,
    DPoPProofError,
    InsufficientScopeError,
    TokenError,
    TokenExpiredError,
    TokenRevokedError,
    TokenSignatureError,
)
from gatepass.tokens import DPoPKey, KeyRing
from gatepass.verify import (
    Introspector,
    PresentedCredentials,
    ResourceVerifier,
    RevocationFeed,
    actor_chain,
    require_scope,
)

from .conftest import AUDIENCE, ISSUER, URL, FakeBroker, PresentFactory, TokenFactory


class TestAccepted:
    """A well-formed request."""

    def test_valid_request_yields_the_grant(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
        dpop_key: DPoPKey,
    ) -> None:
        """A valid token and proof give the agent, task, scopes, key and lease jti."""
        token = make_token(scope="read write")
        headers = present(token)
        verified = verifier.verify("GET", URL, headers.authorization, headers.dpop)
        assert verified.agent_id == "agt_demo"
        assert verified.task_id == "tsk_demo"
        assert verified.scopes == frozenset({"read", "write"})
        assert verified.jkt == dpop_key.jkt
        assert verified.jti == "lease-handle-1"
        assert verified.audience == AUDIENCE

    def test_scheme_is_case_insensitive(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """The auth scheme is matched case-insensitively (RFC 9110 §11.1)."""
        token = make_token()
        headers = present(token)
        verified = verifier.verify("GET", URL, f"dpop {token}", headers.dpop)
        assert verified.agent_id == "agt_demo"

    def test_repr_shows_no_claims(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """The verified access's repr leaves out the raw claims."""
        token = make_token()
        headers = present(token)
        verified = verifier.verify("GET", URL, headers.authorization, headers.dpop)
        assert "claims" not in repr(verified)
        assert token not in repr(verified)


class TestAuthorizationHeader:
    """The ``Authorization`` header."""

    @pytest.mark.parametrize("value", [None, "", "   "])
    def test_missing_header_is_refused(
        self, verifier: ResourceVerifier, value: str | None
    ) -> None:
        """No credentials: invalid_token."""
        with pytest.raises(TokenError, match="missing access token"):
            verifier.verify("GET", URL, value, None)

    def test_bearer_use_of_a_bound_token_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """RFC 9449 §7.1: a DPoP-bound token sent as Bearer is refused."""
        token = make_token()
        headers = present(token)
        with pytest.raises(TokenError, match="bearer"):
            verifier.verify("GET", URL, f"Bearer {token}", headers.dpop)

    def test_other_scheme_is_refused(self, verifier: ResourceVerifier) -> None:
        """Basic and friends are refused."""
        with pytest.raises(TokenError, match="scheme"):
            verifier.verify("GET", URL, "Basic dXNlcjpwYXNz", None)

    @pytest.mark.parametrize("value", ["DPoP", "DPoP a b", "DPoP a,b", 'DPoP "x"'])
    def test_malformed_credentials_are_refused(
        self, verifier: ResourceVerifier, value: str
    ) -> None:
        """A credential that is not a b64token is refused."""
        with pytest.raises(TokenError):
            verifier.verify("GET", URL, value, None)


class TestToken:
    """The access token itself."""

    def test_wrong_audience_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A token for another target is refused."""
        token = make_token(aud="https://other.example/")
        headers = present(token)
        with pytest.raises(TokenError, match="audience"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_wrong_issuer_is_refused(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A verifier for another issuer refuses the token."""
        other = ResourceVerifier(
            issuer="https://evil.example",
            audience=AUDIENCE,
            key_source=ring,
            clock=clock,
        )
        token = make_token()
        headers = present(token)
        with pytest.raises(TokenError, match="issuer"):
            other.verify("GET", URL, headers.authorization, headers.dpop)

    def test_expired_token_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
        clock: FrozenClock,
    ) -> None:
        """A token past its exp (plus leeway) is refused."""
        token = make_token()
        clock.advance(301 + 30)
        headers = present(token)
        with pytest.raises(TokenExpiredError):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_task_token_is_not_an_access_token(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A token of another typ (a task token) is refused (RFC 8725 §3.11)."""
        token = make_token(typ="txntoken+jwt")
        headers = present(token)
        with pytest.raises(TokenError, match="type"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_unbound_token_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A token without cnf.jkt is refused."""
        token = make_token(cnf=None)
        headers = present(token)
        with pytest.raises(TokenError, match="not dpop-bound"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_token_without_task_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A token without txn is refused."""
        token = make_token(txn=None)
        headers = present(token)
        with pytest.raises(TokenError, match="txn"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_non_string_scope_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A scope claim that is not a string is refused."""
        token = make_token(scope=["read"])
        headers = present(token)
        with pytest.raises(TokenError, match="scope"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_tampered_token_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A token whose claims were swapped after signing is refused."""
        head, _, signature = make_token().split(".")
        _, body, _ = make_token(scope="read write admin").split(".")
        forged = f"{head}.{body}.{signature}"
        headers = present(forged)
        with pytest.raises(TokenSignatureError):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)


class TestProof:
    """The DPoP proof that must accompany the token."""

    def test_missing_proof_is_refused(
        self, verifier: ResourceVerifier, make_token: TokenFactory
    ) -> None:
        """No DPoP header: invalid_dpop_proof."""
        with pytest.raises(DPoPProofError, match="missing"):
            verifier.verify("GET", URL, f"DPoP {make_token()}", None)

    def test_replayed_proof_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A proof is good for one request only (RFC 9449 §11.1)."""
        token = make_token()
        headers = present(token)
        verifier.verify("GET", URL, headers.authorization, headers.dpop)
        with pytest.raises(DPoPProofError, match="replayed"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_wrong_method_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A proof for GET does not authorise a POST."""
        token = make_token()
        headers = present(token, method="GET")
        with pytest.raises(DPoPProofError, match="htm"):
            verifier.verify("POST", URL, headers.authorization, headers.dpop)

    def test_wrong_url_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A proof for another URL is refused."""
        token = make_token()
        headers = present(token, url="https://api.example/admin")
        with pytest.raises(DPoPProofError, match="htu"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_proof_for_another_token_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """The proof's ath must hash this token."""
        token = make_token()
        headers = present(token, ath_token=make_token(jti="other"))
        with pytest.raises(DPoPProofError, match="ath"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_proof_by_another_key_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A thief's own key cannot present a token bound to the agent's key."""
        token = make_token()
        headers = present(token, key=DPoPKey.generate())
        with pytest.raises(DPoPProofError, match="binding"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)


class TestRevocation:
    """Revocation status through introspection."""

    def test_active_token_passes(
        self,
        checked_verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
        broker: FakeBroker,
    ) -> None:
        """An active token passes after one introspection request."""
        token = make_token()
        headers = present(token)
        checked_verifier.verify("GET", URL, headers.authorization, headers.dpop)
        assert len(broker.requests) == 1

    def test_revoked_token_is_refused(
        self,
        checked_verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
        broker: FakeBroker,
    ) -> None:
        """A token the broker reports inactive is refused."""
        token = make_token()
        broker.revoked.add(token)
        headers = present(token)
        with pytest.raises(TokenRevokedError):
            checked_verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_unreachable_broker_fails_closed(
        self,
        checked_verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
        broker: FakeBroker,
    ) -> None:
        """When the broker cannot answer, the token is refused."""
        broker.down = True
        token = make_token()
        headers = present(token)
        with pytest.raises(TokenError, match="revocation status unavailable"):
            checked_verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_invalid_proof_does_not_reach_the_broker(
        self,
        checked_verifier: ResourceVerifier,
        make_token: TokenFactory,
        broker: FakeBroker,
    ) -> None:
        """Offline checks run first, so garbage costs the broker nothing."""
        with pytest.raises(DPoPProofError):
            checked_verifier.verify("GET", URL, f"DPoP {make_token()}", None)
        assert broker.requests == []


class TestConfiguration:
    """Building a verifier."""

    def test_public_url_must_be_http(self, ring: KeyRing) -> None:
        """A public URL that is not absolute http(s) is refused at start."""
        with pytest.raises(ConfigurationError):
            ResourceVerifier(
                issuer=ISSUER, audience="urn:x", key_source=ring, public_url="ftp://x"
            )

    def test_url_for_joins_public_url_and_path(self, ring: KeyRing) -> None:
        """Request URLs are the public URL plus the request path."""
        verifier = ResourceVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            key_source=ring,
            public_url="https://api.example/base/",
        )
        assert verifier.url_for("/tickets") == "https://api.example/base/tickets"
        assert ISSUER in repr(verifier)

    def test_jwks_uri_defaults_to_the_issuer(self) -> None:
        """Without keys, the verifier fetches {issuer}/jwks.json and fails closed."""
        verifier = ResourceVerifier(issuer="http://127.0.0.1:9", audience=AUDIENCE)
        try:
            with pytest.raises(TokenError):
                verifier.verify("GET", URL, "DPoP a.b.c", None)
        finally:
            verifier.close()


class TestRequireScope:
    """require_scope."""

    def test_granted_action_passes(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """An action in the scope passes; another raises insufficient_scope."""
        token = make_token(scope="read")
        headers = present(token)
        verified = verifier.verify("GET", URL, headers.authorization, headers.dpop)
        require_scope(verified, "read")
        with pytest.raises(InsufficientScopeError, match="write"):
            require_scope(verified, "write")


class TestPublicURL:
    """Where the htu a proof must name comes from."""

    def test_issue12_audience_with_a_path_is_not_doubled(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """Audience http://host/mcp and request path /mcp check htu http://host/mcp."""
        audience = "http://127.0.0.1:8705/mcp"
        verifier = ResourceVerifier(
            issuer=ISSUER, audience=audience, key_source=ring, clock=clock
        )
        assert verifier.public_url == "http://127.0.0.1:8705"
        assert verifier.url_for("/mcp") == audience
        token = make_token(aud=audience)
        headers = present(token, method="POST", url=audience)
        url = verifier.url_for("/mcp")
        verified = verifier.verify("POST", url, headers.authorization, headers.dpop)
        assert verified.audience == audience


class TestRevocationFeedChecks:
    """Revocation learned from the push stream, with introspection as fallback."""

    @staticmethod
    def _feed(clock: FrozenClock, *, healthy: bool) -> RevocationFeed:
        feed = RevocationFeed(ISSUER, "api-token", clock=clock)
        feed._set_healthy(healthy=healthy)
        return feed

    def _verifier(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        feed: RevocationFeed,
        introspector: Introspector | None = None,
    ) -> ResourceVerifier:
        return ResourceVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            key_source=ring,
            clock=clock,
            revocations=feed,
            introspection=introspector,
        )

    def test_pushed_revocation_is_refused(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A jti the stream named is refused while the stream is up."""
        feed = self._feed(clock, healthy=True)
        verifier = self._verifier(ring, clock, feed)
        feed.revoke("lease-handle-1")
        headers = present(make_token())
        with pytest.raises(TokenRevokedError):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_healthy_stream_asks_nobody(
        self,
        *,
        ring: KeyRing,
        clock: FrozenClock,
        broker: FakeBroker,
        introspector: Introspector,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """With the stream up, no request reaches the introspection endpoint."""
        verifier = self._verifier(
            ring, clock, self._feed(clock, healthy=True), introspector
        )
        for _ in range(3):
            headers = present(make_token())
            verifier.verify("GET", URL, headers.authorization, headers.dpop)
        assert broker.requests == []

    def test_stream_down_falls_back_to_introspection(
        self,
        *,
        ring: KeyRing,
        clock: FrozenClock,
        broker: FakeBroker,
        introspector: Introspector,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """While the stream is down the broker is asked, and its answer holds."""
        verifier = self._verifier(
            ring, clock, self._feed(clock, healthy=False), introspector
        )
        token = make_token()
        broker.revoked.add(token)
        headers = present(token)
        with pytest.raises(TokenRevokedError):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)
        assert len(broker.requests) == 1

    def test_stream_down_without_fallback_fails_closed(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """No stream and no introspection: nothing can vouch, so refuse."""
        verifier = self._verifier(ring, clock, self._feed(clock, healthy=False))
        headers = present(make_token())
        with pytest.raises(TokenError, match="revocation status unavailable"):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_for_broker_wires_the_stream_and_introspection(self) -> None:
        """for_broker follows {issuer}/v1/revocations/stream, asks /introspect."""
        verifier = ResourceVerifier.for_broker(
            "http://127.0.0.1:9", "http://127.0.0.1:8402/mcp", api_token="t"
        )
        try:
            assert verifier.revocations is not None
            assert "v1/revocations/stream" in repr(verifier.revocations)
            assert verifier.metadata.authorization_servers == ("http://127.0.0.1:9",)
        finally:
            verifier.close()


class TestVerifiedAccess:
    """What a verified token tells the application."""

    def test_actor_chain_and_task_context(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """Nested act claims become the actor chain, newest actor first."""
        token = make_token(
            act={"sub": "agt_child", "act": {"sub": "agt_parent"}},
            tenant="acme",
            env="dev",
        )
        headers = present(token)
        verified = verifier.verify("GET", URL, headers.authorization, headers.dpop)
        assert verified.actors == ("agt_child", "agt_parent")
        assert verified.tenant == "acme"
        assert verified.environment == "dev"

    def test_malformed_act_ends_the_chain(self) -> None:
        """An act without a string sub ends the chain there."""
        assert actor_chain({"act": {"sub": "a", "act": {"sub": 3}}}) == ("a",)
        assert actor_chain({"act": "x"}) == ()
        deep: dict[str, object] = {"sub": "end"}
        for index in range(40):
            deep = {"sub": f"agt_{index}", "act": deep}
        assert len(actor_chain({"act": deep})) == 16


class TestVerifiedTokenCache:
    """A token verified once is remembered by hash until it expires."""

    def test_cached_token_still_needs_a_fresh_proof(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """The second request with the same token checks its own proof."""
        token = make_token()
        headers = present(token)
        verifier.verify("GET", URL, headers.authorization, headers.dpop)
        with pytest.raises(DPoPProofError):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_expired_cached_token_is_refused(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
        clock: FrozenClock,
    ) -> None:
        """Past its exp (and the leeway) a remembered token is verified again."""
        token = make_token()
        headers = present(token)
        verifier.verify("GET", URL, headers.authorization, headers.dpop)
        clock.advance(dt.timedelta(minutes=10))
        headers = present(token)
        with pytest.raises(TokenExpiredError):
            verifier.verify("GET", URL, headers.authorization, headers.dpop)

    def test_needs_io_only_before_the_first_verification(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """Without a revocation source, a known token verifies with no I/O."""
        token = make_token()
        assert verifier.needs_io(token)
        headers = present(token)
        verifier.verify("GET", URL, headers.authorization, headers.dpop)
        assert not verifier.needs_io(token)
        assert verifier.needs_io(make_token(jti="other"))

    def test_needs_io_follows_the_revocation_source(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        introspector: Introspector,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """Introspection may block; a healthy stream does not; a down one may."""
        feed = RevocationFeed(ISSUER, "api-token", clock=clock)
        token = make_token()
        for revocations, expected in ((None, True), (feed, True)):
            checked = ResourceVerifier(
                issuer=ISSUER,
                audience=AUDIENCE,
                key_source=ring,
                clock=clock,
                introspection=introspector,
                revocations=revocations,
            )
            headers = present(token)
            checked.verify("GET", URL, headers.authorization, headers.dpop)
            assert checked.needs_io(token) is expected
        feed._set_healthy(healthy=True)
        assert not checked.needs_io(token)

    def test_cache_can_be_turned_off(
        self, ring: KeyRing, clock: FrozenClock, make_token: TokenFactory
    ) -> None:
        """max_cached_tokens=0 verifies every token in full, always off the loop."""
        verifier = ResourceVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            key_source=ring,
            clock=clock,
            max_cached_tokens=0,
        )
        assert verifier.needs_io(make_token())

    def test_cache_is_bounded(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """The oldest remembered token is forgotten first."""
        verifier = ResourceVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            key_source=ring,
            clock=clock,
            max_cached_tokens=2,
        )
        tokens = [make_token(jti=f"j{index}") for index in range(3)]
        for token in tokens:
            headers = present(token)
            verifier.verify("GET", URL, headers.authorization, headers.dpop)
        assert verifier.needs_io(tokens[0])
        assert not verifier.needs_io(tokens[2])


class TestCertificateBinding:
    """RFC 8705 §3: a cnf.x5t#S256 token only over the certificate it names."""

    @pytest.mark.parametrize(
        ("connection", "accepted"),
        [("thumb-a", True), ("thumb-b", False), (None, False)],
    )
    def test_issue11_bound_token_needs_its_certificate(
        self,
        *,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
        dpop_key: DPoPKey,
        connection: str | None,
        accepted: bool,
    ) -> None:
        """The same certificate passes; another or none is invalid_token."""
        token = make_token(cnf={"jkt": dpop_key.jkt, "x5t#S256": "thumb-a"})
        headers = present(token)
        presented = PresentedCredentials(
            token=token, proof=headers.dpop, certificate=connection
        )
        if accepted:
            assert verifier.verify_presented("GET", URL, presented).jti
        else:
            with pytest.raises(TokenError, match="client certificate"):
                verifier.verify_presented("GET", URL, presented)

    def test_issue11_unbound_token_ignores_the_connection(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A DPoP-only token passes with or without a client certificate."""
        token = make_token()
        headers = present(token)
        presented = PresentedCredentials(
            token=token, proof=headers.dpop, certificate="thumb-a"
        )
        assert verifier.verify_presented("GET", URL, presented).jti
