"""Fixtures for the SSF tests: a key ring, a signer and the keys that trust it."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.fernet import Fernet

from gatepass.clock import FrozenClock
from gatepass.sealing import Sealer
from gatepass.tokens import JWTIssuer, KeyRing, rotate

ISSUER = "https://broker.example"
AUDIENCE = "https://api.example/"


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when told to."""
    return FrozenClock()


@pytest.fixture(params=["ES256", "EdDSA"])
def ring(request: pytest.FixtureRequest, clock: FrozenClock) -> KeyRing:
    """A key ring (current + next) for each supported algorithm."""
    sealer = Sealer([Fernet.generate_key()])
    records = rotate(
        [],
        algorithm=request.param,
        sealer=sealer,
        now=clock.now(),
        retire_after=dt.timedelta(hours=1),
    )
    return KeyRing(records, sealer)


@pytest.fixture
def signer(ring: KeyRing) -> JWTIssuer:
    """The broker's issuer over the ring."""
    return JWTIssuer(ring, issuer=ISSUER)
