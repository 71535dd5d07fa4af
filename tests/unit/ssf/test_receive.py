"""The SET verifier: each RFC 8417/8935 check; only a good SET passes (#14)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from gatepass.clock import FrozenClock, to_epoch
from gatepass.errors import InvalidGrantError, SecurityEventError
from gatepass.identity import VerificationKey
from gatepass.ssf.events import CAEP
from gatepass.ssf.receive import SETVerifier, VerifiedSET
from gatepass.ssf.rules import SignalSettings, TransmitterSettings
from gatepass.tokens import b64url
from gatepass.tokens.jws import sign

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ISSUER = "https://idp.example.test"
AUDIENCE = "https://gatepass.example.test/ssf"
KEY = ec.generate_private_key(ec.SECP256R1())


class FakeKeys:
    """A transmitter's keys in memory: the module's key under kid k1."""

    async def key_for(self, kid: str) -> VerificationKey:
        """Return k1, refuse any other kid as the key cache does."""
        if kid != "k1":
            raise InvalidGrantError("token key is not in the key set")
        return VerificationKey(kid="k1", key=KEY.public_key(), algorithm="ES256")

    async def refresh_if_due(self) -> None:
        """Nothing to refresh."""


def _keys(_: TransmitterSettings) -> FakeKeys:
    return FakeKeys()


def make_verifier(**transmitter: Any) -> SETVerifier:
    """Return a verifier trusting one transmitter with the module's key."""
    settings_ = SignalSettings(
        transmitters=[
            TransmitterSettings(
                issuer=ISSUER,
                jwks_file="unused.json",
                audience=AUDIENCE,
                **transmitter,
            )
        ]
    )
    return SETVerifier(settings_, clock=FrozenClock(NOW), keys=_keys)


def make_set(
    payload: dict[str, Any] | None = None,
    header: dict[str, Any] | None = None,
    key: ec.EllipticCurvePrivateKey = KEY,
) -> str:
    """Return a SET signed with ``key``."""
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": to_epoch(NOW),
        "jti": "set-1",
        "sub_id": {"format": "email", "email": "agent@example.test"},
        "events": {CAEP + "session-revoked": {}},
    }
    claims.update(payload or {})
    claims = {name: value for name, value in claims.items() if value is not ...}
    protected = {"alg": "ES256", "typ": "secevent+jwt", "kid": "k1", **(header or {})}
    signing_input = (
        b64url(json.dumps(protected).encode())
        + "."
        + b64url(json.dumps(claims).encode())
    )
    return f"{signing_input}.{b64url(sign(signing_input.encode(), key, 'ES256'))}"


def verify(token: str, verifier: SETVerifier | None = None, **kw: Any) -> VerifiedSET:
    """Verify synchronously."""
    chosen = verifier or make_verifier()

    async def run() -> VerifiedSET:
        return await chosen.verify(token, authorization=kw.get("authorization"))

    return anyio.run(run)


def refusal(token: str, **kw: Any) -> str:
    """Return the RFC 8935 code of the refusal."""
    with pytest.raises(SecurityEventError) as raised:
        verify(token, **kw)
    return raised.value.err


class TestVerify:
    """One check, one code."""

    def test_a_good_set(self) -> None:
        """A well-formed SET verifies to its event and subject."""
        verified = verify(make_set())
        assert verified.event_type == CAEP + "session-revoked"
        assert verified.subject.names() == ("agent@example.test",)
        assert verified.jti == "set-1"

    def test_audience_list(self) -> None:
        """An aud list that names the receiver is accepted."""
        assert verify(make_set({"aud": ["other", AUDIENCE]})).issuer == ISSUER

    def test_subject_in_the_event(self) -> None:
        """CAEP 1.0 puts the subject in the event: accepted too."""
        token = make_set(
            {
                "sub_id": ...,
                "events": {
                    CAEP + "session-revoked": {
                        "subject": {"format": "opaque", "id": "a1"}
                    }
                },
            }
        )
        assert verify(token).subject.names() == ("a1",)

    def test_no_subject_at_all(self) -> None:
        """A SET that names no subject is invalid_request."""
        assert refusal(make_set({"sub_id": ...})) == "invalid_request"

    @pytest.mark.parametrize(
        ("change", "header", "err"),
        [
            ({"iss": "https://evil.test"}, None, "invalid_issuer"),
            ({"aud": "https://other.test"}, None, "invalid_audience"),
            ({"aud": 7}, None, "invalid_audience"),
            ({"iat": to_epoch(NOW) - 3600}, None, "invalid_request"),
            ({"iat": to_epoch(NOW) + 3600}, None, "invalid_request"),
            ({"iat": "yesterday"}, None, "invalid_request"),
            ({"iat": 10**20}, None, "invalid_request"),
            ({"exp": to_epoch(NOW) - 1}, None, "invalid_request"),
            ({"jti": ""}, None, "invalid_request"),
            ({"events": {}}, None, "invalid_request"),
            ({"events": {CAEP + "a": {}, CAEP + "b": {}}}, None, "invalid_request"),
            ({"events": {CAEP + "session-revoked": []}}, None, "invalid_request"),
            ({"events": {"https://x.test/unknown": {}}}, None, "invalid_request"),
            ({"sub_id": {"format": "email"}}, None, "invalid_request"),
            (
                {"sub_id": {"format": "carrier-pigeon", "id": "x"}},
                None,
                "invalid_request",
            ),
            ({}, {"typ": "JWT"}, "invalid_request"),
            ({}, {"kid": None}, "invalid_request"),
            ({}, {"kid": "k2"}, "invalid_key"),
            ({}, {"alg": "ES384"}, "invalid_key"),
            ({}, {"alg": "none"}, "invalid_key"),
        ],
    )
    def test_refusals(
        self, change: dict[str, Any], header: dict[str, Any] | None, err: str
    ) -> None:
        """Each failed check is refused with its RFC 8935 code."""
        assert refusal(make_set(change, header)) == err

    def test_another_key(self) -> None:
        """A SET signed by another key under the transmitter's kid is invalid_key."""
        other = ec.generate_private_key(ec.SECP256R1())
        assert refusal(make_set(key=other)) == "invalid_key"

    def test_not_a_jws(self) -> None:
        """Anything but a compact JWS is invalid_request."""
        assert refusal("hello") == "invalid_request"

    def test_push_authorization(self, tmp_path) -> None:
        """With a push token the bearer must match, in constant time."""
        token_file = tmp_path / "push.token"
        token_file.write_text("s3cret-push-token\n", encoding="utf-8")
        verifier = make_verifier(push_token_file=token_file)
        assert verifier.secrets == ["s3cret-push-token"]
        token = make_set()
        assert refusal(token, verifier=verifier) == "authentication_failed"
        assert (
            refusal(token, verifier=verifier, authorization="Bearer nope")
            == "authentication_failed"
        )
        ok = verify(token, verifier, authorization="Bearer s3cret-push-token")
        assert ok.issuer == ISSUER


class TestProperties:
    """Hypothesis: tampering always fails, and junk never escapes as another error."""

    @settings(max_examples=60)
    @given(position=st.integers(min_value=0), byte=st.characters(codec="ascii"))
    def test_any_tampered_character_fails(self, position: int, byte: str) -> None:
        """Changing any one character of a good SET makes it fail verification."""
        token = make_set()
        index = position % len(token)
        if token[index] == byte:
            return
        tampered = token[:index] + byte + token[index + 1 :]
        with pytest.raises(SecurityEventError):
            verify(tampered)

    @settings(max_examples=60)
    @given(
        claims=st.dictionaries(
            st.sampled_from(["iss", "aud", "iat", "exp", "jti", "events", "sub_id"]),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3)
                ),
                max_leaves=8,
            ),
        )
    )
    def test_junk_claims_are_refused_cleanly(self, claims: dict[str, Any]) -> None:
        """Arbitrary claim values are accepted or refused, never an exception."""
        errors: list[str] = []
        try:
            verify(make_set(claims))
        except SecurityEventError as error:
            errors.append(error.err)
        assert set(errors) <= SecurityEventError.ERRORS

    @settings(max_examples=60)
    @given(body=st.text(max_size=300))
    def test_junk_bodies_are_invalid_requests(self, body: str) -> None:
        """Any text that is not a SET is refused (never a crash)."""
        with pytest.raises(SecurityEventError):
            verify(body)
