"""Fixtures for the resource-server verifier: keys, tokens, proofs, a fake broker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from gatepass.clock import FrozenClock, to_epoch
from gatepass.sealing import Sealer
from gatepass.tokens import DPoPKey, JWTIssuer, KeyRing, rotate
from gatepass.verify import Introspector, ResourceVerifier

ISSUER = "https://broker.example"
AUDIENCE = "https://api.example/"
URL = "https://api.example/tickets"
INTROSPECT_URL = f"{ISSUER}/introspect"
API_TOKEN = "api-token-for-tests"

TokenFactory = Callable[..., str]


@dataclass
class Presented:
    """The two headers of a request that presents a token."""

    authorization: str
    dpop: str


PresentFactory = Callable[..., Presented]


@dataclass
class FakeBroker:
    """An introspection endpoint: every token is active unless revoked or down."""

    revoked: set[str] = field(default_factory=set)
    down: bool = False
    status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one RFC 7662 request."""
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.headers.get("authorization") != f"Bearer {API_TOKEN}":
            return httpx.Response(401, json={"error": "unauthenticated"})
        if self.status != 200:
            return httpx.Response(self.status, text="oops")
        token = httpx.QueryParams(request.content.decode())["token"]
        return httpx.Response(200, json={"active": token not in self.revoked})

    def client(self) -> httpx.Client:
        """Return an HTTP client that talks to this fake."""
        return httpx.Client(transport=httpx.MockTransport(self.handle))


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when told to."""
    return FrozenClock()


@pytest.fixture
def ring(clock: FrozenClock) -> KeyRing:
    """A fresh ES256 key ring."""
    sealer = Sealer([Fernet.generate_key()])
    records = rotate(
        [],
        algorithm="ES256",
        sealer=sealer,
        now=clock.now(),
        retire_after=dt.timedelta(hours=1),
    )
    return KeyRing(records, sealer)


@pytest.fixture
def dpop_key() -> DPoPKey:
    """The agent's task key."""
    return DPoPKey.generate()


@pytest.fixture
def make_token(ring: KeyRing, clock: FrozenClock, dpop_key: DPoPKey) -> TokenFactory:
    """Sign an access token; keyword arguments override or (None) drop claims."""
    signer = JWTIssuer(ring, issuer=ISSUER)

    def build(*, typ: str = "at+jwt", **overrides: Any) -> str:
        now = to_epoch(clock.now())
        claims: dict[str, Any] = {
            "sub": "agt_demo",
            "aud": AUDIENCE,
            "client_id": "agt_demo",
            "iat": now,
            "exp": now + 300,
            "jti": "lease-handle-1",
            "scope": "read",
            "txn": "tsk_demo",
            "cnf": {"jkt": dpop_key.jkt},
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return signer.sign(claims, typ=typ)

    return build


@pytest.fixture
def present(dpop_key: DPoPKey, clock: FrozenClock) -> PresentFactory:
    """Build the headers that present a token, with a proof for one request."""

    def build(
        token: str,
        *,
        method: str = "GET",
        url: str = URL,
        key: DPoPKey | None = None,
        ath_token: str | None = None,
    ) -> Presented:
        signer = key or dpop_key
        proof = signer.proof(
            method, url, access_token=ath_token or token, now=clock.now()
        )
        return Presented(authorization=f"DPoP {token}", dpop=proof)

    return build


@pytest.fixture
def verifier(ring: KeyRing, clock: FrozenClock) -> ResourceVerifier:
    """A verifier that trusts the ring, without introspection."""
    return ResourceVerifier(
        issuer=ISSUER, audience=AUDIENCE, key_source=ring, clock=clock
    )


@pytest.fixture
def broker() -> FakeBroker:
    """The fake introspection endpoint."""
    return FakeBroker()


@pytest.fixture
def introspector(broker: FakeBroker, clock: FrozenClock) -> Introspector:
    """An introspector that asks the fake broker."""
    return Introspector(INTROSPECT_URL, API_TOKEN, http=broker.client(), clock=clock)


@pytest.fixture
def checked_verifier(
    ring: KeyRing, clock: FrozenClock, introspector: Introspector
) -> ResourceVerifier:
    """A verifier that also asks the fake broker for revocation status."""
    return ResourceVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        key_source=ring,
        clock=clock,
        introspection=introspector,
    )
