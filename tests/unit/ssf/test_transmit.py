"""Building and signing Security Event Tokens (RFC 8417, CAEP, SSF 1.0)."""

from __future__ import annotations

import datetime as dt

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import TokenError, TokenSignatureError
from gatepass.ssf import transmit
from gatepass.ssf.consume import verify_set
from gatepass.tokens import JWTIssuer, KeyRing, parse_compact

from .conftest import AUDIENCE, ISSUER


def _revoked(clock: FrozenClock, **overrides: object) -> transmit.SecurityEvent:
    arguments: dict[str, object] = {
        "token_id": "jti-1",
        "task_id": "tsk_1",
        "audiences": [AUDIENCE],
        "revoked_at": clock.now() - dt.timedelta(seconds=3),
        "now": clock.now(),
    }
    arguments.update(overrides)
    return transmit.session_revoked(**arguments)  # type: ignore[arg-type]


class TestSessionRevoked:
    """The CAEP session-revoked SET of one access token."""

    def test_claims(self, clock: FrozenClock) -> None:
        """sub_id is the token's jti (opaque), txn its task, one event, no exp."""
        event = _revoked(clock, reason="task closed")
        claims = event.claims
        assert claims["sub_id"] == {"format": "opaque", "id": "jti-1"}
        assert claims["txn"] == "tsk_1"
        assert claims["aud"] == [AUDIENCE]
        assert claims["jti"] == event.jti
        assert event.jti.startswith("set_")
        assert "exp" not in claims
        body = claims["events"][transmit.CAEP_SESSION_REVOKED]
        assert body["event_timestamp"] == int(clock.now().timestamp()) - 3
        assert body["initiating_entity"] == "system"
        assert body["reason_admin"] == {"en": "task closed"}
        assert event.subject == "jti-1"

    def test_every_set_has_its_own_jti(self, clock: FrozenClock) -> None:
        """Two SETs about the same token still have different jti."""
        assert _revoked(clock).jti != _revoked(clock).jti

    def test_needs_an_audience(self, clock: FrozenClock) -> None:
        """A SET without an audience is refused at build time."""
        with pytest.raises(ValueError, match="audience"):
            _revoked(clock, audiences=[])

    def test_initiating_entity_is_caep_vocabulary(self, clock: FrozenClock) -> None:
        """Only admin, user, policy and system initiate events."""
        with pytest.raises(ValueError, match="initiating entity"):
            _revoked(clock, initiating_entity="robot")


class TestOtherEvents:
    """token-claims-change, verification and stream-updated."""

    def test_claims_change(self, clock: FrozenClock) -> None:
        """The changed claims are carried with their new values."""
        event = transmit.token_claims_change(
            token_id="jti-2",
            task_id="tsk_2",
            audiences=[AUDIENCE],
            claims={"scope": "read"},
            changed_at=clock.now(),
            now=clock.now(),
            initiating_entity="policy",
        )
        body = event.claims["events"][transmit.CAEP_TOKEN_CLAIMS_CHANGE]
        assert body["claims"] == {"scope": "read"}
        assert body["initiating_entity"] == "policy"

    def test_claims_change_needs_a_claim(self, clock: FrozenClock) -> None:
        """An empty change is refused."""
        with pytest.raises(ValueError, match="claim"):
            transmit.token_claims_change(
                token_id="j",
                task_id="t",
                audiences=[AUDIENCE],
                claims={},
                changed_at=clock.now(),
                now=clock.now(),
            )

    def test_verification_echoes_state(self, clock: FrozenClock) -> None:
        """The verification event names the stream and echoes the state."""
        event = transmit.verification(
            stream_id="sst_1", audiences=[AUDIENCE], state="abc", now=clock.now()
        )
        assert event.claims["events"] == {transmit.SSF_VERIFICATION: {"state": "abc"}}
        assert event.claims["sub_id"] == {"format": "opaque", "id": "sst_1"}
        other = transmit.verification(
            stream_id="sst_1", audiences=[AUDIENCE], state=None, now=clock.now()
        )
        assert other.subject != event.subject
        assert other.claims["events"] == {transmit.SSF_VERIFICATION: {}}

    def test_stream_updated(self, clock: FrozenClock) -> None:
        """stream-updated carries the status and the reason."""
        event = transmit.stream_updated(
            stream_id="sst_1",
            audiences=[AUDIENCE],
            status="disabled",
            reason="inactive",
            now=clock.now(),
        )
        assert event.claims["events"] == {
            transmit.SSF_STREAM_UPDATED: {"status": "disabled", "reason": "inactive"}
        }


class TestSigning:
    """SETs are signed like the broker's tokens and verified strictly."""

    def test_header_and_round_trip(
        self, signer: JWTIssuer, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """Header {alg, kid, typ: secevent+jwt}; verify_set returns the claims."""
        event = _revoked(clock)
        token = transmit.sign_event(signer, event)
        header = parse_compact(token).header
        assert header == {
            "alg": ring.signing_algorithm,
            "kid": ring.signing_kid,
            "typ": "secevent+jwt",
        }
        claims = verify_set(token, keys=ring, issuer=ISSUER, audience=AUDIENCE)
        assert claims == {**event.claims, "iss": ISSUER}

    def test_access_token_is_not_a_set(
        self, signer: JWTIssuer, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """A token of another typ, validly signed, is refused (RFC 8725 §3.11)."""
        token = signer.sign(_revoked(clock).claims, typ="at+jwt")
        with pytest.raises(TokenError, match="not a security event token"):
            verify_set(token, keys=ring, issuer=ISSUER, audience=AUDIENCE)

    def test_wrong_audience_or_issuer(
        self, signer: JWTIssuer, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """Another audience or issuer is refused."""
        token = transmit.sign_event(signer, _revoked(clock))
        with pytest.raises(TokenError, match="audience"):
            verify_set(token, keys=ring, issuer=ISSUER, audience="https://x.example/")
        with pytest.raises(TokenError, match="issuer"):
            verify_set(token, keys=ring, issuer="https://x.example", audience=AUDIENCE)

    def test_tampered_payload(
        self, signer: JWTIssuer, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """A changed payload byte breaks the signature."""
        token = transmit.sign_event(signer, _revoked(clock))
        header, payload, signature = token.split(".")
        forged = transmit.sign_event(signer, _revoked(clock, token_id="jti-9"))
        spliced = f"{header}.{forged.split('.')[1]}.{signature}"
        assert payload != forged.split(".")[1]
        with pytest.raises(TokenSignatureError):
            verify_set(spliced, keys=ring, issuer=ISSUER, audience=AUDIENCE)

    def test_two_events_refused(
        self, signer: JWTIssuer, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """A SET holds exactly one event (SSF 1.0 §4.1)."""
        claims = _revoked(clock).claims
        claims["events"] = {**claims["events"], transmit.SSF_VERIFICATION: {}}
        token = signer.sign(claims, typ="secevent+jwt")
        with pytest.raises(TokenError, match="exactly one event"):
            verify_set(token, keys=ring, issuer=ISSUER, audience=AUDIENCE)

    def test_malformed(self, ring: KeyRing) -> None:
        """Something that is not a JWS is a TokenError."""
        with pytest.raises(TokenError, match="malformed"):
            verify_set("nope", keys=ring, issuer=ISSUER, audience=AUDIENCE)
