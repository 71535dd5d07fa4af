"""Tests for JWTIssuer and JWTVerifier (RFC 8725, RFC 9068)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gatepass.clock import FrozenClock
from gatepass.errors import (
    ConfigurationError,
    TokenError,
    TokenExpiredError,
    TokenSignatureError,
)
from gatepass.tokens import JWTIssuer, JWTVerifier, KeyRing, b64url

from . import forge
from .conftest import AUDIENCE, ISSUER, TYP, RingFactory

Claims = Callable[..., dict[str, Any]]


def header_of(token: str) -> dict[str, Any]:
    """Return the decoded header of a token."""
    return jwt.get_unverified_header(token)


class TestJWTIssuer:
    """Signing."""

    def test_header_is_exactly_alg_kid_typ(
        self, issuer: JWTIssuer, make_claims: Claims
    ) -> None:
        """The header carries alg, kid and typ and nothing else."""
        token = issuer.sign(make_claims(), typ=TYP)
        assert header_of(token) == {
            "alg": issuer.ring.signing_algorithm,
            "kid": issuer.ring.signing_kid,
            "typ": TYP,
        }

    def test_iss_is_set(self, issuer: JWTIssuer, make_claims: Claims) -> None:
        """The issuer overrides any iss supplied by the caller."""
        token = issuer.sign(make_claims(iss="https://evil.example"), typ=TYP)
        assert jwt.decode(token, options={"verify_signature": False})["iss"] == ISSUER

    def test_ring_is_replaceable(
        self, issuer: JWTIssuer, make_ring: RingFactory, make_claims: Claims
    ) -> None:
        """Assigning a new ring switches the signing key."""
        new_ring = make_ring("EdDSA")
        issuer.ring = new_ring
        token = issuer.sign(make_claims(), typ=TYP)
        assert header_of(token)["kid"] == new_ring.signing_kid


class TestJWTVerifierRoundTrip:
    """Valid tokens verify."""

    def test_round_trip(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """A token signed by the ring verifies and returns its claims."""
        claims = make_claims(scope="read", cnf={"jkt": "abc"})
        verified = verifier.verify(
            issuer.sign(claims, typ=TYP), typ=TYP, audience=AUDIENCE
        )
        assert verified == {**claims, "iss": ISSUER}

    def test_one_element_audience_list(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """A single audience in a list is accepted."""
        token = issuer.sign(make_claims(aud=[AUDIENCE]), typ=TYP)
        assert verifier.verify(token, typ=TYP, audience=AUDIENCE)["aud"] == [AUDIENCE]

    @pytest.mark.parametrize("typ", ["AT+JWT", "application/at+jwt"])
    def test_typ_media_type_rules(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims, typ: str
    ) -> None:
        """The typ compares case-insensitively and may carry application/ (RFC 7515)."""
        token = issuer.sign(make_claims(), typ=typ)
        assert verifier.verify(token, typ=TYP, audience=AUDIENCE)

    def test_leeway_on_exp(
        self,
        issuer: JWTIssuer,
        verifier: JWTVerifier,
        make_claims: Claims,
        clock: FrozenClock,
    ) -> None:
        """A token is accepted until exp + leeway, then expires."""
        token = issuer.sign(make_claims(), typ=TYP)
        clock.advance(300 + 29)
        assert verifier.verify(token, typ=TYP, audience=AUDIENCE)
        clock.advance(1)
        with pytest.raises(TokenExpiredError, match="token has expired"):
            verifier.verify(token, typ=TYP, audience=AUDIENCE)

    def test_nbf_in_the_past(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """An nbf already reached is fine."""
        claims = make_claims()
        token = issuer.sign({**claims, "nbf": claims["iat"]}, typ=TYP)
        assert verifier.verify(token, typ=TYP, audience=AUDIENCE)


class TestJWTVerifierRejects:
    """Every failed check raises its own error."""

    def check(
        self,
        verifier: JWTVerifier,
        token: str,
        error: type[TokenError],
        message: str,
    ) -> None:
        """Assert that verification fails with this class and message."""
        with pytest.raises(error, match=message) as info:
            verifier.verify(token, typ=TYP, audience=AUDIENCE)
        assert type(info.value) is error
        if token:
            assert token not in str(info.value)

    @pytest.mark.parametrize(
        "token", ["", "abc", "a.b", "a.b.c.d", "é.é.é", "x" * 20000, "e30.e30.!!"]
    )
    def test_malformed(self, verifier: JWTVerifier, token: str) -> None:
        """Text that is not a compact JWS is malformed."""
        self.check(verifier, token, TokenError, "malformed token")

    def test_header_not_json(self, verifier: JWTVerifier) -> None:
        """A header that is not a JSON object is malformed."""
        self.check(verifier, f"{b64url(b'[1]')}.e30.AA", TokenError, "malformed token")

    def test_crit_header(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """Critical extensions are not understood, so rejected (RFC 7515 §4.1.11)."""
        ring = issuer.ring
        token = forge.signed(
            {"kid": ring.signing_kid, "typ": TYP, "crit": ["exp"], "exp": 1},
            make_claims(iss=ISSUER),
            ring.sign_key,
            ring.signing_algorithm,
        )
        self.check(verifier, token, TokenError, "malformed token")

    def test_wrong_typ(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """A task token is not an access token (RFC 8725 §3.11)."""
        token = issuer.sign(make_claims(), typ="txntoken+jwt")
        self.check(verifier, token, TokenError, "unexpected token type")

    def test_missing_typ(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """A token without typ is refused."""
        ring = issuer.ring
        token = forge.signed(
            {"kid": ring.signing_kid, "typ": None},
            make_claims(iss=ISSUER),
            ring.sign_key,
            ring.signing_algorithm,
        )
        self.check(verifier, token, TokenError, "unexpected token type")

    def test_alg_none(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """The alg none is never accepted."""
        header = {"alg": "none", "kid": issuer.ring.signing_kid, "typ": TYP}
        token = forge.unsigned(header, make_claims(iss=ISSUER))
        self.check(verifier, token, TokenSignatureError, "algorithm is not allowed")

    def test_hs256_key_confusion(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """HS256 keyed with the public key is refused (CVE-2015-9235 shape)."""
        secret = json.dumps(issuer.ring.jwks()["keys"][0]).encode()
        token = forge.hmac_signed(
            {"kid": issuer.ring.signing_kid, "typ": TYP},
            make_claims(iss=ISSUER),
            secret,
        )
        self.check(verifier, token, TokenSignatureError, "algorithm is not allowed")

    def test_alg_not_the_keys(
        self, make_ring: RingFactory, clock: FrozenClock, make_claims: Claims
    ) -> None:
        """A token claiming EdDSA under an ES256 kid is refused: alg is pinned."""
        ring = make_ring("ES256")
        verifier = JWTVerifier(ring, issuer=ISSUER, clock=clock)
        other = make_ring("EdDSA")
        token = forge.signed(
            {"kid": ring.signing_kid, "typ": TYP},
            make_claims(iss=ISSUER),
            other.sign_key,
            "EdDSA",
        )
        self.check(
            verifier, token, TokenSignatureError, "does not match the signing key"
        )

    def test_missing_kid(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """The kid is required."""
        ring = issuer.ring
        token = forge.signed(
            {"typ": TYP}, make_claims(iss=ISSUER), ring.sign_key, ring.signing_algorithm
        )
        self.check(verifier, token, TokenError, "no key id")

    def test_unknown_kid(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """A kid the ring does not know is a signature error."""
        ring = issuer.ring
        token = forge.signed(
            {"kid": "unknown", "typ": TYP},
            make_claims(iss=ISSUER),
            ring.sign_key,
            ring.signing_algorithm,
        )
        self.check(verifier, token, TokenSignatureError, "unknown signing key")

    def test_bad_signature(
        self,
        issuer: JWTIssuer,
        verifier: JWTVerifier,
        make_claims: Claims,
        algorithm: str,
    ) -> None:
        """A token signed by a foreign key of the right type is refused."""
        if algorithm == "ES256":
            foreign: Any = ec.generate_private_key(ec.SECP256R1())
        else:
            from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

            foreign = ed25519.Ed25519PrivateKey.generate()
        token = forge.signed(
            {"kid": issuer.ring.signing_kid, "typ": TYP},
            make_claims(iss=ISSUER),
            foreign,
            algorithm,
        )
        self.check(verifier, token, TokenSignatureError, "invalid token signature")

    def test_payload_not_json(self, issuer: JWTIssuer, verifier: JWTVerifier) -> None:
        """A signed payload that is not a JSON object is malformed."""
        ring = issuer.ring
        token = jwt.api_jws.encode(
            b"[1,2]",
            ring.sign_key,
            algorithm=ring.signing_algorithm,
            headers={"kid": ring.signing_kid, "typ": TYP},
        )
        self.check(verifier, token, TokenError, "malformed token claims")

    @pytest.mark.parametrize("claim", ["sub", "aud", "exp", "iat", "jti"])
    def test_missing_claim(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims, claim: str
    ) -> None:
        """Each required claim is required."""
        token = issuer.sign(make_claims(**{claim: None}), typ=TYP)
        self.check(verifier, token, TokenError, f"no {claim} claim")

    def test_missing_iss(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """The iss is required."""
        ring = issuer.ring
        token = forge.signed(
            {"kid": ring.signing_kid, "typ": TYP},
            make_claims(),
            ring.sign_key,
            ring.signing_algorithm,
        )
        self.check(verifier, token, TokenError, "no iss claim")

    def test_wrong_issuer(
        self, ring: KeyRing, clock: FrozenClock, make_claims: Claims
    ) -> None:
        """A token from another issuer is refused."""
        token = JWTIssuer(ring, issuer="https://other.example").sign(
            make_claims(), typ=TYP
        )
        verifier = JWTVerifier(ring, issuer=ISSUER, clock=clock)
        self.check(verifier, token, TokenError, "issuer is not trusted")

    @pytest.mark.parametrize("value", ["", 7])
    def test_bad_subject(
        self,
        issuer: JWTIssuer,
        verifier: JWTVerifier,
        make_claims: Claims,
        value: object,
    ) -> None:
        """The sub must be a non-empty string."""
        self.check(
            verifier,
            issuer.sign(make_claims(sub=value), typ=TYP),
            TokenError,
            "subject is invalid",
        )

    @pytest.mark.parametrize("value", ["", 7])
    def test_bad_jti(
        self,
        issuer: JWTIssuer,
        verifier: JWTVerifier,
        make_claims: Claims,
        value: object,
    ) -> None:
        """The jti must be a non-empty string."""
        self.check(
            verifier,
            issuer.sign(make_claims(jti=value), typ=TYP),
            TokenError,
            "token id is invalid",
        )

    @pytest.mark.parametrize(
        "aud", ["https://other.example/", ["https://other.example/"], 5]
    )
    def test_wrong_audience(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims, aud: object
    ) -> None:
        """A token for another audience is refused."""
        self.check(
            verifier,
            issuer.sign(make_claims(aud=aud), typ=TYP),
            TokenError,
            "audience does not match",
        )

    @pytest.mark.parametrize("aud", [[], [AUDIENCE, "https://other.example/"]])
    def test_not_exactly_one_audience(
        self,
        issuer: JWTIssuer,
        verifier: JWTVerifier,
        make_claims: Claims,
        aud: list[str],
    ) -> None:
        """A token with zero or several audiences is refused (RFC 8707)."""
        self.check(
            verifier,
            issuer.sign(make_claims(aud=aud), typ=TYP),
            TokenError,
            "exactly one audience",
        )

    @pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
    @pytest.mark.parametrize("value", ["soon", True, None])
    def test_time_claims_must_be_numbers(
        self,
        issuer: JWTIssuer,
        verifier: JWTVerifier,
        make_claims: Claims,
        claim: str,
        value: object,
    ) -> None:
        """exp, iat and nbf must be NumericDates."""
        claims = make_claims()
        claims[claim] = value
        self.check(
            verifier,
            issuer.sign(claims, typ=TYP),
            TokenError,
            f"{claim} is not a number",
        )

    def test_expired(
        self,
        issuer: JWTIssuer,
        verifier: JWTVerifier,
        make_claims: Claims,
        clock: FrozenClock,
    ) -> None:
        """An expired token raises TokenExpiredError."""
        token = issuer.sign(make_claims(), typ=TYP)
        clock.advance(dt.timedelta(hours=1))
        self.check(verifier, token, TokenExpiredError, "token has expired")

    def test_issued_in_the_future(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """The iat beyond the leeway is refused."""
        claims = make_claims()
        token = issuer.sign({**claims, "iat": claims["iat"] + 31}, typ=TYP)
        self.check(verifier, token, TokenError, "issued in the future")

    def test_not_yet_valid(
        self, issuer: JWTIssuer, verifier: JWTVerifier, make_claims: Claims
    ) -> None:
        """The nbf beyond the leeway is refused."""
        claims = make_claims()
        token = issuer.sign({**claims, "nbf": claims["iat"] + 31}, typ=TYP)
        self.check(verifier, token, TokenError, "not yet valid")


class TestJWTVerifierConfiguration:
    """The allow-list is checked at construction."""

    @pytest.mark.parametrize(
        "algorithms", [frozenset(), frozenset({"HS256"}), frozenset({"none", "ES256"})]
    )
    def test_bad_allow_list(
        self, ring: KeyRing, clock: FrozenClock, algorithms: frozenset[str]
    ) -> None:
        """Only ES256 and EdDSA may be allowed."""
        with pytest.raises(ConfigurationError, match="ES256 or EdDSA"):
            JWTVerifier(ring, issuer=ISSUER, clock=clock, algorithms=algorithms)

    def test_narrow_allow_list(
        self, make_ring: RingFactory, clock: FrozenClock, make_claims: Claims
    ) -> None:
        """A verifier allowing only ES256 refuses EdDSA tokens."""
        ring = make_ring("EdDSA")
        verifier = JWTVerifier(
            ring, issuer=ISSUER, clock=clock, algorithms=frozenset({"ES256"})
        )
        token = JWTIssuer(ring, issuer=ISSUER).sign(make_claims(), typ=TYP)
        with pytest.raises(TokenSignatureError, match="algorithm is not allowed"):
            verifier.verify(token, typ=TYP, audience=AUDIENCE)
