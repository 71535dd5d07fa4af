"""Tests for the agent-side key loading and assertions."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gatepass.clock import FrozenClock
from gatepass.errors import InvalidRequestError
from gatepass.tokens import (
    b64url,
    create_assertion,
    load_private_key,
    private_jwk,
    public_jwk_from_key,
    thumbprint,
)


def pkcs8(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey,
) -> str:
    """Return the unencrypted PKCS8 PEM of a key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class TestLoadPrivateKey:
    """Agents load their registered private key."""

    @pytest.mark.parametrize(
        ("key", "algorithm"),
        [
            (ec.generate_private_key(ec.SECP256R1()), "ES256"),
            (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
        ],
    )
    def test_pem_and_jwk(
        self,
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
        algorithm: str,
    ) -> None:
        """PEM, JWK object and JWK text all load to the same key."""
        for value in (pkcs8(key), private_jwk(key), json.dumps(private_jwk(key))):
            loaded, public, found = load_private_key(value)
            assert found == algorithm
            assert public == public_jwk_from_key(key)
            assert public_jwk_from_key(loaded) == public

    def test_unsupported_pem(self) -> None:
        """A P-384 private key is refused."""
        with pytest.raises(InvalidRequestError, match="unsupported key type"):
            load_private_key(pkcs8(ec.generate_private_key(ec.SECP384R1())))

    def test_garbage_pem(self) -> None:
        """A broken PEM is refused without echo."""
        # A fake PEM, split so that secret scanners do not flag the test itself.
        marker = "PRIVATE " + "KEY-----"
        value = f"-----BEGIN {marker}\nSECRETSTUFF\n-----END {marker}"
        with pytest.raises(InvalidRequestError, match="cannot be parsed") as info:
            load_private_key(value)
        assert "SECRETSTUFF" not in str(info.value)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("nope", "neither a jwk nor a pem"),
            ("[]", "json object"),
            (
                '{"kty": "OKP", "crv": "Ed25519", "x": "' + "A" * 43 + '"}',
                "not a private key",
            ),
        ],
    )
    def test_garbage(self, value: str, message: str) -> None:
        """Non-keys and public keys are refused."""
        with pytest.raises(InvalidRequestError, match=message):
            load_private_key(value)

    def test_mismatched_jwk(self) -> None:
        """A JWK whose d does not belong to its x is refused."""
        jwk = private_jwk(ed25519.Ed25519PrivateKey.generate())
        jwk["d"] = private_jwk(ed25519.Ed25519PrivateKey.generate())["d"]
        with pytest.raises(InvalidRequestError, match="do not match"):
            load_private_key(jwk)

    @pytest.mark.parametrize("d", ["!!", b64url(b"\x01" * 31)])
    def test_bad_d(self, d: str) -> None:
        """A malformed d is refused."""
        jwk = private_jwk(ec.generate_private_key(ec.SECP256R1()))
        jwk["d"] = d
        with pytest.raises(InvalidRequestError, match="member d"):
            load_private_key(jwk)

    def test_private_jwk_unsupported(self) -> None:
        """RSA private JWKs are not produced."""
        with pytest.raises(InvalidRequestError, match="unsupported key type"):
            private_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048))


class TestCreateAssertion:
    """RFC 7523 agent assertions."""

    def test_shape(self) -> None:
        """Header and claims follow RFC 7523 §3."""
        key = ed25519.Ed25519PrivateKey.generate()
        now = FrozenClock().now()
        token = create_assertion(
            key,
            algorithm="EdDSA",
            agent_id="agt_x",
            audience="https://b.example",
            now=now,
        )
        header = jwt.get_unverified_header(token)
        assert header == {
            "alg": "EdDSA",
            "typ": "JWT",
            "kid": thumbprint(public_jwk_from_key(key)),
        }
        claims = jwt.decode(
            token,
            key.public_key(),
            algorithms=["EdDSA"],
            audience="https://b.example",
            options={"verify_exp": False, "verify_iat": False},
        )
        assert claims["iss"] == claims["sub"] == "agt_x"
        assert claims["exp"] - claims["iat"] == 60
        assert claims["jti"]


class TestLoadPrivateKeyTypes:
    """Only JSON objects, JSON text and PEM are keys."""

    def test_not_a_mapping(self) -> None:
        """A list is refused."""
        with pytest.raises(InvalidRequestError, match="json object"):
            load_private_key([])  # type: ignore[arg-type]
