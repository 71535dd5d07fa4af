"""Tests for the issuer: its tokens are exactly what PyJWT writes and accepts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt
import pytest

from gatepass.tokens import JWTIssuer, KeyRing
from gatepass.tokens.jws import parse_compact

from .conftest import AUDIENCE, ISSUER, TYP, RingFactory

CLAIMS: dict[str, Any] = {
    "sub": "agt_1",
    "aud": AUDIENCE,
    "iat": 1_700_000_000,
    "exp": 1_700_000_300,
    "jti": "tok_1",
    "scope": "read write",
    "cnf": {"jkt": "x" * 43},
    "note": "héllo \u2603",
}


class TestPyJWTCompatibility:
    """Issued tokens are interchangeable with jwt.encode's (RFC 7515 §7.1)."""

    def test_pyjwt_decode_accepts_issued_tokens(
        self, issuer: JWTIssuer, ring: KeyRing, algorithm: str
    ) -> None:
        """jwt.decode with the public key verifies the signature and the claims."""
        token = issuer.sign(CLAIMS, typ=TYP)
        key, _ = ring.key_for(ring.signing_kid)
        decoded = jwt.decode(
            token,
            key,  # type: ignore[arg-type]
            algorithms=[algorithm],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"verify_exp": False, "verify_iat": False},
        )
        assert decoded == {**CLAIMS, "iss": ISSUER}
        assert jwt.get_unverified_header(token) == {
            "alg": algorithm,
            "kid": ring.signing_kid,
            "typ": TYP,
        }

    def test_header_and_payload_bytes_match_pyjwt(
        self, issuer: JWTIssuer, ring: KeyRing, algorithm: str
    ) -> None:
        """Only the signature can differ from jwt.encode's token for the same claims."""
        ours = issuer.sign(CLAIMS, typ=TYP)
        theirs = jwt.encode(
            {**CLAIMS, "iss": ISSUER},
            ring.sign_key,
            algorithm=algorithm,
            headers={"kid": ring.signing_kid, "typ": TYP},
        )
        assert ours.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
        assert len(parse_compact(ours).signature) == 64  # R || S, or Ed25519

    def test_datetime_time_claims_become_numeric_dates(self, issuer: JWTIssuer) -> None:
        """exp, iat and nbf given as aware datetimes are written as jwt.encode does."""
        moment = dt.datetime(2026, 1, 6, 10, tzinfo=dt.UTC)
        token = issuer.sign({"iat": moment, "exp": moment, "nbf": moment}, typ=TYP)
        claims = parse_compact(token).claims()
        epoch = int(moment.timestamp())
        assert (claims["iat"], claims["exp"], claims["nbf"]) == (epoch,) * 3

    def test_nan_is_refused(self, issuer: JWTIssuer) -> None:
        """A NaN claim raises instead of producing a token no verifier accepts."""
        with pytest.raises(ValueError, match="JSON compliant"):
            issuer.sign({"exp": float("nan")}, typ=TYP)

    def test_new_ring_signs_with_its_own_kid(
        self, issuer: JWTIssuer, make_ring: RingFactory, algorithm: str
    ) -> None:
        """The cached header follows a ring swap (rotation): the kid is the new one."""
        issuer.sign(CLAIMS, typ=TYP)
        new_ring = make_ring(algorithm)
        issuer.ring = new_ring
        token = issuer.sign(CLAIMS, typ=TYP)
        assert jwt.get_unverified_header(token)["kid"] == new_ring.signing_kid
        key, _ = new_ring.key_for(new_ring.signing_kid)
        jwt.decode(
            token,
            key,  # type: ignore[arg-type]
            algorithms=[algorithm],
            audience=AUDIENCE,
            options={"verify_exp": False, "verify_iat": False},
        )

    def test_header_cache_is_bounded(self, issuer: JWTIssuer) -> None:
        """Many token types never grow the header cache past its bound."""
        for number in range(40):
            issuer.sign(CLAIMS, typ=f"type{number}+jwt")
        assert len(issuer._headers) <= 16
