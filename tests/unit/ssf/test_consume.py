"""The resource-server side: a poll subscription over a fake transmitter."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import TokenError, TokenSignatureError
from gatepass.ssf import transmit
from gatepass.ssf.consume import SSFPollSubscription, verify_set
from gatepass.tokens import JWTIssuer, KeyRing

from .conftest import AUDIENCE, ISSUER

POLL = "urn:ietf:rfc:8936"


class _Sink:
    """Records what the subscription reports."""

    def __init__(self) -> None:
        self.revoked: list[tuple[str, dt.datetime | None]] = []
        self.connected = 0

    def revoke(self, jti: str, *, at: dt.datetime | None = None) -> None:
        self.revoked.append((jti, at))

    def mark_connected(self) -> None:
        self.connected += 1


class _Transmitter:
    """A fake SSF transmitter: answers the given poll batches, then 404."""

    def __init__(self, batches: list[dict[str, str]]) -> None:
        self.batches = batches
        self.polls: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/ssf-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "delivery_methods_supported": [POLL],
                    "configuration_endpoint": f"{ISSUER}/v1/ssf/streams",
                },
            )
        if path == "/v1/ssf/streams":
            self.created.append(json.loads(request.content))
            return httpx.Response(
                201,
                json={
                    "stream_id": "sst_1",
                    "delivery": {"method": POLL, "endpoint_url": f"{ISSUER}/poll"},
                },
            )
        self.polls.append(json.loads(request.content))
        if not self.batches:
            return httpx.Response(404, json={"error": "not_found"})
        return httpx.Response(200, json={"sets": self.batches.pop(0)})


def _revoked(signer: JWTIssuer, clock: FrozenClock, jti: str) -> tuple[str, str]:
    event = transmit.session_revoked(
        token_id=jti,
        task_id="tsk_1",
        audiences=[AUDIENCE],
        revoked_at=clock.now(),
        now=clock.now(),
    )
    return event.jti, transmit.sign_event(signer, event)


@pytest.mark.anyio
async def test_revocations_reported_and_acknowledged(
    signer: JWTIssuer, ring: KeyRing, clock: FrozenClock
) -> None:
    """Verified SETs revoke their token and are acked; a forged one is a setErr."""
    set_id, good = _revoked(signer, clock, "jti-1")
    other = JWTIssuer(ring, issuer="https://forger.example")
    bad_id, bad = _revoked(other, clock, "jti-2")
    fake = _Transmitter([{}, {set_id: good, bad_id: bad}])
    subscription = SSFPollSubscription(ISSUER, AUDIENCE, keys=ring)
    sink = _Sink()
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as http:
        ended = await subscription.follow(http, "gp_ssf_receiver_x", sink)
    assert ended is True
    assert sink.connected == 1
    assert sink.revoked == [("jti-1", clock.now().replace(microsecond=0))]
    assert fake.created[0]["aud"] == [AUDIENCE]
    assert fake.polls[0]["returnImmediately"] is True
    last = fake.polls[-1]
    assert last["ack"] == [set_id]
    assert last["setErrs"][bad_id]["err"] == "invalid_request"
    assert subscription.stream_id is None


@pytest.mark.anyio
async def test_refused_subscription(ring: KeyRing) -> None:
    """A transmitter that refuses the stream makes follow return False."""

    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("ssf-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "delivery_methods_supported": [POLL],
                    "configuration_endpoint": f"{ISSUER}/v1/ssf/streams",
                },
            )
        return httpx.Response(403, json={"error": "access_denied"})

    subscription = SSFPollSubscription(ISSUER, AUDIENCE, keys=ring)
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        assert await subscription.follow(http, "t", _Sink()) is False


@pytest.mark.anyio
async def test_configuration_of_another_issuer(ring: KeyRing) -> None:
    """Metadata naming another issuer is refused before anything is created."""

    def other(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": "https://other.example"})

    subscription = SSFPollSubscription(ISSUER, AUDIENCE, keys=ring)
    async with httpx.AsyncClient(transport=httpx.MockTransport(other)) as http:
        with pytest.raises(ValueError, match="another issuer"):
            await subscription.follow(http, "t", _Sink())


class TestVerifySetRefusals:
    """verify_set refuses what is not a broker SET, one check at a time."""

    def _signed(self, signer: JWTIssuer, claims: dict[str, Any]) -> str:
        return signer.sign(claims, typ="secevent+jwt")

    def _claims(self, clock: FrozenClock) -> dict[str, Any]:
        event = transmit.session_revoked(
            token_id="j",
            task_id="t",
            audiences=[AUDIENCE],
            revoked_at=clock.now(),
            now=clock.now(),
        )
        return dict(event.claims)

    def test_no_jti(self, signer: JWTIssuer, ring: KeyRing, clock: FrozenClock) -> None:
        """A SET without its own jti is refused."""
        claims = self._claims(clock)
        del claims["jti"]
        with pytest.raises(TokenError, match="no jti"):
            verify_set(
                self._signed(signer, claims),
                keys=ring,
                issuer=ISSUER,
                audience=AUDIENCE,
            )

    def test_string_audience_is_accepted(
        self, signer: JWTIssuer, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """RFC 8417 allows aud as a string."""
        claims = {**self._claims(clock), "aud": AUDIENCE}
        token = self._signed(signer, claims)
        assert verify_set(token, keys=ring, issuer=ISSUER, audience=AUDIENCE)["aud"]

    def test_algorithm_not_allowed(
        self, signer: JWTIssuer, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """An allow-list without the key's algorithm refuses the SET."""
        token = self._signed(signer, self._claims(clock))
        with pytest.raises(TokenSignatureError, match="not allowed"):
            verify_set(
                token,
                keys=ring,
                issuer=ISSUER,
                audience=AUDIENCE,
                algorithms=frozenset({"ES256", "EdDSA"} - {ring.signing_algorithm}),
            )


@pytest.mark.anyio
async def test_poll_refused_after_subscribing(signer: JWTIssuer, ring: KeyRing) -> None:
    """A poll answered 401 ends follow with False, to back off."""
    fake = _Transmitter([])

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/poll":
            return httpx.Response(401, json={"error": "unauthenticated"})
        return fake.handle(request)

    subscription = SSFPollSubscription(ISSUER, AUDIENCE, keys=ring)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        assert await subscription.follow(http, "t", _Sink()) is False
        assert subscription.stream_id == "sst_1"
        deleted: list[str] = []

        def record(request: httpx.Request) -> httpx.Response:
            deleted.append(str(request.url))
            return httpx.Response(204)

        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as other:
            await subscription.close(other, "t")
    assert deleted == [f"{ISSUER}/v1/ssf/streams?stream_id=sst_1"]
    assert subscription.stream_id is None
