"""Property tests: round trips and tamper resistance of signed tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from gatepass.clock import FrozenClock
from gatepass.errors import TokenError
from gatepass.sealing import Sealer
from gatepass.tokens import JWTIssuer, JWTVerifier, KeyRing, rotate

from .conftest import AUDIENCE, ISSUER, TYP
from .strategies import extra_claims, lifetimes, subjects, token_ids

CLOCK = FrozenClock()
SEALER = Sealer([Fernet.generate_key()])
RINGS = {
    algorithm: KeyRing(
        rotate(
            [],
            algorithm=algorithm,
            sealer=SEALER,
            now=CLOCK.now(),
            retire_after=dt.timedelta(hours=1),
        ),
        SEALER,
    )
    for algorithm in ("ES256", "EdDSA")
}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ é\x00"


def claims_for(
    extra: dict[str, Any], sub: str, jti: str, lifetime: int
) -> dict[str, Any]:
    """Build a valid claims set around arbitrary extra claims."""
    now = int(CLOCK.now().timestamp())
    return {
        **extra,
        "sub": sub,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti,
    }


class TestTokenProperties:
    """Issue → verify, for any claims, and any single tamper fails."""

    @pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
    @settings(max_examples=60, deadline=None)
    @given(extra=extra_claims, sub=subjects, jti=token_ids, lifetime=lifetimes)
    def test_round_trip(
        self, algorithm: str, extra: dict[str, Any], sub: str, jti: str, lifetime: int
    ) -> None:
        """Every issued token verifies to exactly its claims plus iss."""
        ring = RINGS[algorithm]
        claims = claims_for(extra, sub, jti, lifetime)
        token = JWTIssuer(ring, issuer=ISSUER).sign(claims, typ=TYP)
        verified = JWTVerifier(ring, issuer=ISSUER, clock=CLOCK).verify(
            token, typ=TYP, audience=AUDIENCE
        )
        assert verified == {**claims, "iss": ISSUER}

    @pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
    @settings(max_examples=100, deadline=None)
    @given(data=st.data(), extra=extra_claims)
    def test_any_changed_character_fails(
        self, algorithm: str, data: st.DataObject, extra: dict[str, Any]
    ) -> None:
        """Changing any one character makes verification raise a TokenError."""
        ring = RINGS[algorithm]
        token = JWTIssuer(ring, issuer=ISSUER).sign(
            claims_for(extra, "s", "j", 60), typ=TYP
        )
        index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
        replacement = data.draw(
            st.sampled_from(ALPHABET).filter(lambda c: c != token[index])
        )
        tampered = token[:index] + replacement + token[index + 1 :]
        with pytest.raises(TokenError):
            JWTVerifier(ring, issuer=ISSUER, clock=CLOCK).verify(
                tampered, typ=TYP, audience=AUDIENCE
            )

    @pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
    @settings(max_examples=50, deadline=None)
    @given(data=st.data())
    def test_any_flipped_bit_fails(self, algorithm: str, data: st.DataObject) -> None:
        """Flipping any bit of any byte of the token raises a TokenError."""
        ring = RINGS[algorithm]
        token = JWTIssuer(ring, issuer=ISSUER).sign(
            claims_for({}, "s", "j", 60), typ=TYP
        )
        raw = bytearray(token.encode())
        index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[index] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
        tampered = raw.decode("latin-1")
        with pytest.raises(TokenError):
            JWTVerifier(ring, issuer=ISSUER, clock=CLOCK).verify(
                tampered, typ=TYP, audience=AUDIENCE
            )
