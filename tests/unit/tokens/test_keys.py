"""Tests for signing key generation, rotation and the key ring."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography.fernet import Fernet

from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError, TokenSignatureError
from gatepass.sealing import Sealer
from gatepass.tokens import (
    JWKSKeySource,
    JWTIssuer,
    JWTVerifier,
    KeyRecord,
    KeyRing,
    KeyState,
    generate_key,
    rotate,
    thumbprint,
)
from gatepass.tokens.jwk import PRIVATE_MEMBERS

from .conftest import AUDIENCE, ISSUER, TYP

HOUR = dt.timedelta(hours=1)


def states(records: list[KeyRecord]) -> list[KeyState]:
    """Return the states of the records, in order."""
    return [record.state for record in records]


class TestGenerateKey:
    """A fresh signing key."""

    @pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
    def test_kid_is_thumbprint(self, algorithm: str, sealer: Sealer) -> None:
        """The kid is the RFC 7638 thumbprint of the public key."""
        now = FrozenClock().now()
        record = generate_key(algorithm, sealer=sealer, now=now, state=KeyState.NEXT)
        assert record.kid == thumbprint(record.public_jwk)
        assert record.algorithm == algorithm
        assert record.activated_at is None
        assert record.retired_at is None

    def test_private_key_is_sealed(self, sealer: Sealer) -> None:
        """The stored private key is ciphertext, opened only by the master key."""
        now = FrozenClock().now()
        record = generate_key("ES256", sealer=sealer, now=now, state=KeyState.CURRENT)
        assert b"PRIVATE KEY" not in record.sealed_private
        assert sealer.unseal(record.sealed_private).startswith(
            # Split so that secret scanners do not mistake the test for key material.
            b"-----BEGIN " + b"PRIVATE KEY-----"
        )
        assert record.activated_at == now

    def test_repr_hides_material(self, sealer: Sealer) -> None:
        """The record's repr shows no sealed bytes."""
        now = FrozenClock().now()
        record = generate_key("EdDSA", sealer=sealer, now=now, state=KeyState.RETIRED)
        assert "sealed" not in repr(record)
        assert record.retired_at == now

    def test_unsupported_algorithm(self, sealer: Sealer) -> None:
        """Only ES256 and EdDSA keys are generated."""
        with pytest.raises(ConfigurationError, match="unsupported signing algorithm"):
            generate_key(
                "HS256", sealer=sealer, now=FrozenClock().now(), state=KeyState.NEXT
            )


class TestRotate:
    """The next → current → retired state machine."""

    def test_first_rotation_creates_current_and_next(
        self, sealer: Sealer, clock: FrozenClock
    ) -> None:
        """With no keys, rotation creates one current and one next key."""
        records = rotate(
            [], algorithm="ES256", sealer=sealer, now=clock.now(), retire_after=HOUR
        )
        assert states(records) == [KeyState.CURRENT, KeyState.NEXT]
        assert records[0].activated_at == clock.now()

    def test_next_becomes_current(self, sealer: Sealer, clock: FrozenClock) -> None:
        """Next is promoted, current retired and a new next added."""
        first = rotate(
            [], algorithm="ES256", sealer=sealer, now=clock.now(), retire_after=HOUR
        )
        clock.advance(60)
        second = rotate(
            first, algorithm="ES256", sealer=sealer, now=clock.now(), retire_after=HOUR
        )
        assert states(second) == [KeyState.CURRENT, KeyState.NEXT, KeyState.RETIRED]
        assert second[0].kid == first[1].kid
        assert second[0].activated_at == clock.now()
        assert second[2].kid == first[0].kid
        assert second[2].retired_at == clock.now()
        assert second[1].kid not in {first[0].kid, first[1].kid}

    def test_input_is_not_changed(self, sealer: Sealer, clock: FrozenClock) -> None:
        """rotate() is pure."""
        first = rotate(
            [], algorithm="ES256", sealer=sealer, now=clock.now(), retire_after=HOUR
        )
        snapshot = list(first)
        rotate(
            first, algorithm="ES256", sealer=sealer, now=clock.now(), retire_after=HOUR
        )
        assert first == snapshot

    def test_old_retired_keys_are_dropped(
        self, sealer: Sealer, clock: FrozenClock
    ) -> None:
        """A key retired longer than retire_after ago is no longer published."""
        records = rotate(
            [], algorithm="EdDSA", sealer=sealer, now=clock.now(), retire_after=HOUR
        )
        records = rotate(
            records,
            algorithm="EdDSA",
            sealer=sealer,
            now=clock.now(),
            retire_after=HOUR,
        )
        retired = records[2].kid
        clock.advance(HOUR)
        records = rotate(
            records,
            algorithm="EdDSA",
            sealer=sealer,
            now=clock.now(),
            retire_after=HOUR,
        )
        assert retired in {record.kid for record in records}
        clock.advance(1)
        records = rotate(
            records,
            algorithm="EdDSA",
            sealer=sealer,
            now=clock.now(),
            retire_after=HOUR,
        )
        assert retired not in {record.kid for record in records}
        assert states(records).count(KeyState.CURRENT) == 1
        assert states(records).count(KeyState.NEXT) == 1

    def test_without_next_current_keeps_signing(
        self, sealer: Sealer, clock: FrozenClock
    ) -> None:
        """A ring with no next key only gains one; nothing signs unpublished."""
        current = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        records = rotate(
            [current],
            algorithm="ES256",
            sealer=sealer,
            now=clock.now(),
            retire_after=HOUR,
        )
        assert states(records) == [KeyState.CURRENT, KeyState.NEXT]
        assert records[0] == current

    def test_two_current_keys_refused(self, sealer: Sealer, clock: FrozenClock) -> None:
        """A corrupt ring with two current keys is a configuration error."""
        pair = [
            generate_key(
                "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
            )
            for _ in range(2)
        ]
        with pytest.raises(ConfigurationError, match="more than one current key"):
            rotate(
                pair,
                algorithm="ES256",
                sealer=sealer,
                now=clock.now(),
                retire_after=HOUR,
            )


class TestKeyRing:
    """The published keys and the signing key."""

    def test_jwks_publishes_next_before_it_signs(
        self, sealer: Sealer, clock: FrozenClock
    ) -> None:
        """The key that will sign after rotation is already in today's JWKS."""
        records = rotate(
            [], algorithm="ES256", sealer=sealer, now=clock.now(), retire_after=HOUR
        )
        ring = KeyRing(records, sealer)
        published = {key["kid"] for key in ring.jwks()["keys"]}
        rotated = KeyRing(
            rotate(
                records,
                algorithm="ES256",
                sealer=sealer,
                now=clock.now(),
                retire_after=HOUR,
            ),
            sealer,
        )
        assert rotated.signing_kid in published
        assert rotated.signing_kid != ring.signing_kid

    def test_token_signed_before_rotation_still_verifies(
        self, sealer: Sealer, clock: FrozenClock
    ) -> None:
        """A verifier with the old JWKS accepts the new key's tokens, and back."""
        records = rotate(
            [], algorithm="EdDSA", sealer=sealer, now=clock.now(), retire_after=HOUR
        )
        old = KeyRing(records, sealer)
        new = KeyRing(
            rotate(
                records,
                algorithm="EdDSA",
                sealer=sealer,
                now=clock.now(),
                retire_after=HOUR,
            ),
            sealer,
        )
        now = int(clock.now().timestamp())
        claims = {"sub": "s", "aud": AUDIENCE, "iat": now, "exp": now + 60, "jti": "j"}
        issuer = JWTIssuer(old, issuer=ISSUER)
        old_token = issuer.sign(claims, typ=TYP)
        issuer.ring = new
        new_token = issuer.sign(claims, typ=TYP)
        cached = JWKSKeySource.from_jwks(old.jwks(), clock=clock)
        assert JWTVerifier(cached, issuer=ISSUER, clock=clock).verify(
            new_token, typ=TYP, audience=AUDIENCE
        )
        assert JWTVerifier(new, issuer=ISSUER, clock=clock).verify(
            old_token, typ=TYP, audience=AUDIENCE
        )

    def test_jwks_has_no_private_material(self, ring: KeyRing) -> None:
        """No published key carries a private member."""
        for key in ring.jwks()["keys"]:
            assert not PRIVATE_MEMBERS.intersection(key)
            assert key["use"] == "sig"
            assert key["alg"] == ring.signing_algorithm
            assert key["kid"] == thumbprint(key)

    def test_jwks_is_a_copy(self, ring: KeyRing) -> None:
        """Callers cannot change the ring through the returned document."""
        ring.jwks()["keys"][0]["kid"] = "changed"
        assert ring.jwks()["keys"][0]["kid"] != "changed"

    def test_key_for_unknown_kid(self, ring: KeyRing) -> None:
        """An unknown kid is a signature error."""
        with pytest.raises(TokenSignatureError, match="unknown signing key"):
            ring.key_for("nope")

    def test_key_for_pins_algorithm(self, ring: KeyRing) -> None:
        """Each kid maps to its own algorithm."""
        _, algorithm = ring.key_for(ring.signing_kid)
        assert algorithm == ring.signing_algorithm
        assert ring.records

    def test_no_current_key(self, sealer: Sealer, clock: FrozenClock) -> None:
        """A ring needs a current key."""
        record = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.NEXT
        )
        with pytest.raises(ConfigurationError, match="no current key"):
            KeyRing([record], sealer)

    def test_wrong_master_key(self, sealer: Sealer, clock: FrozenClock) -> None:
        """A ring sealed under another master key cannot be opened."""
        record = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        with pytest.raises(ConfigurationError, match="cannot be opened"):
            KeyRing([record], Sealer([Fernet.generate_key()]))

    def test_mismatched_private_key(self, sealer: Sealer, clock: FrozenClock) -> None:
        """A record whose private key is not its public key is refused."""
        one = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        two = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        forged = dataclasses.replace(one, sealed_private=two.sealed_private)
        with pytest.raises(ConfigurationError, match="does not match its public key"):
            KeyRing([forged], sealer)

    def test_wrong_kid(self, sealer: Sealer, clock: FrozenClock) -> None:
        """A kid that is not the key's thumbprint is refused."""
        record = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        with pytest.raises(ConfigurationError, match="kid does not match"):
            KeyRing([dataclasses.replace(record, kid="other")], sealer)

    def test_algorithm_must_match_key_type(
        self, sealer: Sealer, clock: FrozenClock
    ) -> None:
        """An EdDSA label on a P-256 key is refused."""
        record = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        with pytest.raises(ConfigurationError, match="does not match its algorithm"):
            KeyRing([dataclasses.replace(record, algorithm="EdDSA")], sealer)

    def test_unsupported_algorithm(self, sealer: Sealer, clock: FrozenClock) -> None:
        """Records naming another algorithm are refused."""
        record = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        with pytest.raises(ConfigurationError, match="unsupported signing algorithm"):
            KeyRing([dataclasses.replace(record, algorithm="RS256")], sealer)

    def test_corrupt_public_jwk(self, sealer: Sealer, clock: FrozenClock) -> None:
        """A record whose public JWK does not parse is refused."""
        record = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        with pytest.raises(ConfigurationError, match="corrupt"):
            KeyRing([dataclasses.replace(record, public_jwk={"kty": "EC"})], sealer)

    def test_corrupt_sealed_pem(self, sealer: Sealer, clock: FrozenClock) -> None:
        """A sealed value that is not a PEM key is refused."""
        record = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        broken = dataclasses.replace(record, sealed_private=sealer.seal(b"junk"))
        with pytest.raises(ConfigurationError, match="corrupt"):
            KeyRing([broken], sealer)


class TestKeyRingSealedKeyType:
    """The sealed key must be of a signing type."""

    def test_rsa_sealed_key(self, sealer: Sealer, clock: FrozenClock) -> None:
        """An RSA private key in a record is refused."""
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

        pem = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        ).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        record = generate_key(
            "ES256", sealer=sealer, now=clock.now(), state=KeyState.CURRENT
        )
        broken = dataclasses.replace(record, sealed_private=sealer.seal(pem))
        with pytest.raises(ConfigurationError, match="does not match its algorithm"):
            KeyRing([broken], sealer)
