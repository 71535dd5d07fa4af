import base64
import dataclasses
import datetime as dt
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatepass.audit import (
    AuditSigner,
    Checkpoint,
    jwk_thumbprint,
    load_public_keys,
    verify_checkpoint,
)
from gatepass.errors import AuditIntegrityError, ConfigurationError
from gatepass.sealing import Sealer

# RFC 8037 Appendix A.1 and A.3.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HASH = "ab" * 32


def rfc8037_signer() -> AuditSigner:
    """Return a signer holding the RFC 8037 example key."""
    raw = base64.urlsafe_b64decode(RFC8037_D + "=")
    return AuditSigner(Ed25519PrivateKey.from_private_bytes(raw))


class TestJwkThumbprint:
    """The audit key's kid is its RFC 7638 thumbprint."""

    def test_matches_rfc_8037_vector(self) -> None:
        """The thumbprint of the RFC 8037 example key is the RFC's value."""
        assert jwk_thumbprint(RFC8037_X) == RFC8037_THUMBPRINT

    def test_signer_kid_is_the_thumbprint(self) -> None:
        """A signer's kid and JWK x come from its public key."""
        signer = rfc8037_signer()
        assert signer.kid == RFC8037_THUMBPRINT
        assert signer.public_jwk["x"] == RFC8037_X


class TestAuditSigner:
    """AuditSigner keeps its key sealed and signs checkpoints."""

    def test_sealed_key_round_trips(self, sealer: Sealer) -> None:
        """A generated key reloads from its sealed bytes with the same kid."""
        signer, sealed = AuditSigner.generate(sealer)
        again = AuditSigner.from_sealed(sealed, sealer)
        assert again.kid == signer.kid
        assert again.public_jwk == signer.public_jwk

    def test_sealed_bytes_hide_the_key(self, sealer: Sealer) -> None:
        """The persisted bytes are ciphertext, not a PKCS #8 key."""
        _, sealed = AuditSigner.generate(sealer)
        with pytest.raises(ValueError):
            serialization.load_der_private_key(sealed, password=None)

    def test_public_jwk_shape(self, signer: AuditSigner) -> None:
        """The public JWK is an RFC 8037 OKP key with its kid and no private part."""
        jwk = signer.public_jwk
        assert jwk["kty"] == "OKP"
        assert jwk["crv"] == "Ed25519"
        assert jwk["kid"] == signer.kid
        assert "d" not in jwk

    def test_wrong_master_key_is_a_configuration_error(self, sealer: Sealer) -> None:
        """A sealed key the master key cannot open stops start-up."""
        _, sealed = AuditSigner.generate(sealer)
        other = Sealer([Fernet.generate_key()])
        with pytest.raises(ConfigurationError, match="master key"):
            AuditSigner.from_sealed(sealed, other)

    def test_refuses_non_ed25519_key(self, sealer: Sealer) -> None:
        """A sealed key of another algorithm is refused."""
        key = ec.generate_private_key(ec.SECP256R1())
        pkcs8 = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with pytest.raises(ConfigurationError, match="not an ed25519 key"):
            AuditSigner.from_sealed(sealer.seal(pkcs8), sealer)

    def test_refuses_garbage(self, sealer: Sealer) -> None:
        """Sealed bytes that are not a key are refused."""
        with pytest.raises(ConfigurationError, match="not a pkcs8 key"):
            AuditSigner.from_sealed(sealer.seal(b"not a key"), sealer)

    def test_sign_makes_a_verifiable_checkpoint(self, signer: AuditSigner) -> None:
        """A signed checkpoint verifies with the signer's public key."""
        checkpoint = signer.sign(7, HASH, AT)
        assert (checkpoint.seq, checkpoint.hash, checkpoint.kid) == (
            7,
            HASH,
            signer.kid,
        )
        verify_checkpoint(checkpoint, load_public_keys(signer.public_jwk))

    def test_sign_normalizes_time(self, signer: AuditSigner) -> None:
        """The checkpoint time is stored in UTC."""
        zone = dt.timezone(dt.timedelta(hours=2))
        checkpoint = signer.sign(1, HASH, dt.datetime(2026, 1, 1, 2, tzinfo=zone))
        assert checkpoint.at == AT
        assert checkpoint.at.tzinfo is dt.UTC

    def test_sign_refuses_naive_time(self, signer: AuditSigner) -> None:
        """A naive checkpoint time is refused."""
        with pytest.raises(ValueError, match="timezone-aware"):
            signer.sign(1, HASH, dt.datetime(2026, 1, 1))  # noqa: DTZ001

    def test_repr_shows_no_key(self, signer: AuditSigner) -> None:
        """The repr names the kid only."""
        assert repr(signer) == f"AuditSigner(kid={signer.kid!r})"


class TestVerifyCheckpoint:
    """verify_checkpoint() refuses unknown keys and bad signatures."""

    def test_unknown_kid(self, signer: AuditSigner) -> None:
        """A checkpoint from a key not in the trusted set is refused."""
        checkpoint = rfc8037_signer().sign(3, HASH, AT)
        with pytest.raises(AuditIntegrityError, match="seq 3 is signed by unknown kid"):
            verify_checkpoint(checkpoint, load_public_keys(signer.public_jwk))

    @pytest.mark.parametrize(
        "change",
        [
            {"seq": 4},
            {"hash": "cd" * 32},
            {"at": AT + dt.timedelta(microseconds=1)},
        ],
    )
    def test_any_changed_field_breaks_the_signature(
        self, signer: AuditSigner, change: dict[str, Any]
    ) -> None:
        """Changing seq, hash or time invalidates the signature."""
        checkpoint = dataclasses.replace(signer.sign(3, HASH, AT), **change)
        with pytest.raises(AuditIntegrityError, match="has an invalid signature"):
            verify_checkpoint(checkpoint, load_public_keys(signer.public_jwk))

    @pytest.mark.parametrize("signature", ["", "!!!!", "AAAA", "A" * 87])
    def test_malformed_signature(self, signer: AuditSigner, signature: str) -> None:
        """A signature that is not 64 base64url bytes is invalid."""
        checkpoint = dataclasses.replace(signer.sign(3, HASH, AT), signature=signature)
        with pytest.raises(AuditIntegrityError, match="seq 3 has an invalid signature"):
            verify_checkpoint(checkpoint, load_public_keys(signer.public_jwk))


class TestLoadPublicKeys:
    """load_public_keys() accepts only well-formed Ed25519 JWKs."""

    def test_accepts_a_key_set(self, signer: AuditSigner) -> None:
        """A JWK set during rotation yields every key by kid."""
        other = rfc8037_signer()
        keys = load_public_keys({"keys": [signer.public_jwk, other.public_jwk]})
        assert set(keys) == {signer.kid, other.kid}

    def test_accepts_a_jwk_without_kid(self) -> None:
        """The kid is optional in the JWK; it is derived from x."""
        keys = load_public_keys({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})
        assert set(keys) == {RFC8037_THUMBPRINT}

    @pytest.mark.parametrize(
        ("jwk", "message"),
        [
            ({"kty": "EC", "crv": "P-256", "x": RFC8037_X}, "not an ed25519 okp jwk"),
            ({"kty": "OKP", "crv": "Ed25519"}, "has no x member"),
            ({"kty": "OKP", "crv": "Ed25519", "x": "a*b"}, "x is not base64url"),
            ({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "x is not 32 bytes"),
            (
                {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": "mine"},
                "kid is not its rfc 7638 thumbprint",
            ),
            ({"keys": "nope"}, "key set is malformed"),
        ],
    )
    def test_refuses_malformed_keys(self, jwk: dict[str, Any], message: str) -> None:
        """A malformed key or key set is refused with a precise message."""
        with pytest.raises(AuditIntegrityError, match=message):
            load_public_keys(jwk)


class TestCheckpointJSON:
    """Checkpoint converts to and from JSON without loss."""

    def test_round_trip(self, signer: AuditSigner) -> None:
        """from_json(to_json()) returns an equal, still valid checkpoint."""
        checkpoint = signer.sign(9, HASH, AT)
        again = Checkpoint.from_json(checkpoint.to_json())
        assert again == checkpoint
        assert checkpoint.to_json()["at"] == "2026-01-01T00:00:00.000000Z"
        verify_checkpoint(again, load_public_keys(signer.public_jwk))

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("seq", None, "seq is not an integer"),
            ("signature", 5, "signature is not a string"),
            ("hash", "xyz", "hash is not a sha-256"),
            ("at", "2026-01-01T00:00:00Z", "at is not rfc 3339"),
        ],
    )
    def test_from_json_refuses_malformed(
        self, signer: AuditSigner, field: str, value: object, message: str
    ) -> None:
        """A malformed checkpoint is an integrity error naming the field."""
        obj = signer.sign(9, HASH, AT).to_json()
        obj[field] = value
        with pytest.raises(AuditIntegrityError, match=message):
            Checkpoint.from_json(obj)
