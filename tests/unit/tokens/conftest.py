"""Fixtures for the token tests: a frozen clock, a sealer and key rings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet

from gatepass.clock import FrozenClock
from gatepass.sealing import Sealer
from gatepass.tokens import (
    JWTIssuer,
    JWTVerifier,
    KeyRing,
    MemoryReplayCache,
    rotate,
)

ISSUER = "https://broker.example"
AUDIENCE = "https://api.example/"
TYP = "at+jwt"

RingFactory = Callable[[str], KeyRing]


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when told to."""
    return FrozenClock()


@pytest.fixture
def sealer() -> Sealer:
    """A sealer with a fresh master key."""
    return Sealer([Fernet.generate_key()])


@pytest.fixture
def make_ring(sealer: Sealer, clock: FrozenClock) -> RingFactory:
    """Build a fresh key ring (current + next) for an algorithm."""

    def build(algorithm: str = "ES256") -> KeyRing:
        records = rotate(
            [],
            algorithm=algorithm,
            sealer=sealer,
            now=clock.now(),
            retire_after=dt.timedelta(hours=1),
        )
        return KeyRing(records, sealer)

    return build


@pytest.fixture(params=["ES256", "EdDSA"])
def algorithm(request: pytest.FixtureRequest) -> str:
    """Each supported signing algorithm."""
    value: str = request.param
    return value


@pytest.fixture
def ring(make_ring: RingFactory, algorithm: str) -> KeyRing:
    """A key ring signing with the parametrised algorithm."""
    return make_ring(algorithm)


@pytest.fixture
def issuer(ring: KeyRing) -> JWTIssuer:
    """An issuer over the ring."""
    return JWTIssuer(ring, issuer=ISSUER)


@pytest.fixture
def verifier(ring: KeyRing, clock: FrozenClock) -> JWTVerifier:
    """A verifier trusting the ring."""
    return JWTVerifier(ring, issuer=ISSUER, clock=clock)


@pytest.fixture
def replay(clock: FrozenClock) -> MemoryReplayCache:
    """An empty replay cache."""
    return MemoryReplayCache(clock)


@pytest.fixture
def make_claims(clock: FrozenClock) -> Callable[..., dict[str, Any]]:
    """Build a valid claims set, with overrides; None removes a claim."""

    def build(**overrides: Any) -> dict[str, Any]:
        now = int(clock.now().timestamp())
        claims: dict[str, Any] = {
            "sub": "agt_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "jti": "token-1",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    return build
