"""Tests for JWK parsing, canonical forms and RFC 7638 thumbprints."""

from __future__ import annotations

import base64
import contextlib
import json
import string

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from gatepass.errors import GatepassError, InvalidRequestError
from gatepass.tokens import (
    DPoPKey,
    algorithm_for,
    b64url,
    load_public_jwk,
    private_jwk,
    public_jwk_from_key,
    public_key_from_jwk,
    thumbprint,
)
from gatepass.tokens.jwk import b64url_decode

from .strategies import arbitrary_text, jwk_like

B64URL_ALPHABET = string.ascii_letters + string.digits + "-_"

# RFC 7638 §3.1: the example RSA key and its thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
        "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
        "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbIS"
        "D08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def pem_public(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """Return the SubjectPublicKeyInfo PEM of a key."""
    return (
        key.public_key()
        .public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        .decode()
    )


class TestB64url:
    """Base64url without padding, decoded strictly."""

    def test_round_trip(self) -> None:
        """Encoding then decoding returns the bytes, without padding."""
        assert b64url(b"\xff\xfe") == "__4"
        assert b64url_decode("__4") == b"\xff\xfe"

    @pytest.mark.parametrize("text", ["__5", "a", "ab=", "a+b/", "ab cd"])
    def test_rejects_non_canonical(self, text: str) -> None:
        """Padding, other alphabets and unused trailing bits are refused."""
        with pytest.raises(ValueError, match="base64url"):
            b64url_decode(text)

    @settings(max_examples=500)
    @given(text=st.text(alphabet=B64URL_ALPHABET + "=+/ \n", max_size=12))
    def test_accepts_exactly_the_canonical_encodings(self, text: str) -> None:
        """A text decodes iff b64url writes it for some bytes (RFC 4648 §3.5)."""
        reference: bytes | None = None
        if len(text) % 4 != 1 and set(text) <= set(B64URL_ALPHABET):
            # The lenient decoder, then the round trip decides canonicity.
            lenient = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            reference = lenient if b64url(lenient) == text else None
        if reference is None:
            with pytest.raises(ValueError, match="base64url"):
                b64url_decode(text)
        else:
            assert b64url_decode(text) == reference

    @given(data=st.binary(max_size=64))
    def test_any_bytes_round_trip(self, data: bytes) -> None:
        """Whatever b64url writes decodes back to the same bytes."""
        assert b64url_decode(b64url(data)) == data


class TestThumbprint:
    """RFC 7638 thumbprints."""

    def test_rfc7638_example(self) -> None:
        """The RFC's own example key yields the RFC's thumbprint."""
        assert thumbprint(RFC7638_KEY) == RFC7638_THUMBPRINT

    def test_ignores_optional_members(self) -> None:
        """Only the required members count."""
        jwk = DPoPKey.generate("ES256").public_jwk
        assert thumbprint({**jwk, "kid": "x", "use": "sig"}) == thumbprint(jwk)

    def test_okp(self) -> None:
        """OKP keys hash crv, kty and x."""
        jwk = DPoPKey.generate("EdDSA").public_jwk
        assert len(thumbprint(jwk)) == 43

    def test_unsupported_kty(self) -> None:
        """A symmetric key has no thumbprint here."""
        with pytest.raises(InvalidRequestError, match="unsupported key type"):
            thumbprint({"kty": "oct", "k": "AAAA"})

    def test_missing_member(self) -> None:
        """A missing required member is named."""
        with pytest.raises(InvalidRequestError, match="member y is missing"):
            thumbprint({"kty": "EC", "crv": "P-256", "x": "AAAA"})


class TestLoadPublicJWK:
    """Registering an agent's public key."""

    @pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
    def test_canonical_jwk(self, algorithm: str) -> None:
        """Extra members are dropped; only kty/crv/x/y remain."""
        jwk = DPoPKey.generate(algorithm).public_jwk
        loaded = load_public_jwk({**jwk, "kid": "mine", "use": "sig"})
        assert loaded == jwk
        assert algorithm_for(loaded) == algorithm

    def test_json_text(self) -> None:
        """A JWK may arrive as JSON text."""
        jwk = DPoPKey.generate().public_jwk
        assert load_public_jwk(json.dumps(jwk)) == jwk

    def test_pem_p256(self) -> None:
        """A P-256 PEM public key becomes a JWK."""
        key = ec.generate_private_key(ec.SECP256R1())
        assert load_public_jwk(pem_public(key)) == public_jwk_from_key(key)

    def test_pem_ed25519(self) -> None:
        """An Ed25519 PEM public key becomes a JWK."""
        key = ed25519.Ed25519PrivateKey.generate()
        assert load_public_jwk(pem_public(key))["crv"] == "Ed25519"

    def test_refuses_private_jwk_without_echo(self) -> None:
        """A private JWK is refused and the key never appears in the message."""
        jwk = private_jwk(DPoPKey.generate().private_key)
        with pytest.raises(InvalidRequestError, match="private keys are not") as info:
            load_public_jwk(jwk)
        assert jwk["d"] not in str(info.value)
        assert jwk["x"] not in str(info.value)

    def test_refuses_private_pem(self) -> None:
        """A PEM private key is refused and not echoed."""
        pem = (
            ed25519.Ed25519PrivateKey.generate()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )
        with pytest.raises(InvalidRequestError, match="private keys are not") as info:
            load_public_jwk(pem)
        assert pem.splitlines()[1] not in str(info.value)

    def test_refuses_p384(self) -> None:
        """Registered keys are P-256 or Ed25519 only."""
        jwk = DPoPKey.generate("ES384").public_jwk
        with pytest.raises(InvalidRequestError, match="unsupported elliptic curve"):
            load_public_jwk(jwk)

    def test_refuses_p384_pem(self) -> None:
        """A P-384 PEM is refused too."""
        pem = pem_public(ec.generate_private_key(ec.SECP384R1()))
        with pytest.raises(InvalidRequestError, match="unsupported elliptic curve"):
            load_public_jwk(pem)

    def test_refuses_rsa(self) -> None:
        """RSA keys cannot be registered."""
        with pytest.raises(InvalidRequestError, match="unsupported key type"):
            load_public_jwk(RFC7638_KEY)

    def test_refuses_rsa_pem(self) -> None:
        """An RSA PEM cannot be registered."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
            .decode()
        )
        with pytest.raises(InvalidRequestError, match="unsupported key type"):
            load_public_jwk(pem)

    def test_refuses_unsupported_okp_curve(self) -> None:
        """X25519 is a key-agreement curve, not a signature key."""
        with pytest.raises(InvalidRequestError, match="unsupported okp curve"):
            load_public_jwk({"kty": "OKP", "crv": "X25519", "x": "A" * 43})

    def test_refuses_point_off_curve(self) -> None:
        """Coordinates that are not a point on P-256 are refused."""
        jwk = dict(DPoPKey.generate().public_jwk)
        jwk["y"] = b64url(b"\x01" * 32)
        with pytest.raises(InvalidRequestError, match="not a point on its curve"):
            load_public_jwk(jwk)

    def test_refuses_wrong_length(self) -> None:
        """A coordinate of the wrong length is refused."""
        jwk = dict(DPoPKey.generate().public_jwk)
        jwk["x"] = b64url(b"\x01" * 31)
        with pytest.raises(InvalidRequestError, match="wrong length"):
            load_public_jwk(jwk)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("not a key", "neither a jwk nor a pem"),
            ("[1, 2]", "json object"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "pem"),
            ('{"kty": "EC", "crv": "P-256", "x": "!!", "y": "AA"}', "not base64url"),
        ],
    )
    def test_refuses_garbage(self, value: str, message: str) -> None:
        """Garbage yields a precise invalid_request message."""
        with pytest.raises(InvalidRequestError, match=message):
            load_public_jwk(value)

    @settings(max_examples=100)
    @given(value=arbitrary_text)
    def test_arbitrary_text_raises_only_gatepass_errors(self, value: str) -> None:
        """Any text is a key or an InvalidRequestError, never another exception."""
        with contextlib.suppress(InvalidRequestError):
            load_public_jwk(value)

    @settings(max_examples=100)
    @given(value=jwk_like)
    def test_arbitrary_jwk_raises_only_gatepass_errors(
        self, value: dict[str, object]
    ) -> None:
        """Any JSON object is a key or a gatepass error, for every loader."""
        for function in (load_public_jwk, public_key_from_jwk, thumbprint):
            with contextlib.suppress(GatepassError):
                function(value)


class TestAlgorithmFor:
    """The algorithm pinned to a key type."""

    def test_unsupported(self) -> None:
        """P-384 keys have no pinned broker algorithm."""
        with pytest.raises(InvalidRequestError, match="unsupported key type"):
            algorithm_for({"kty": "EC", "crv": "P-384"})


class TestPublicKeyFromJWK:
    """Public key objects for verification."""

    @pytest.mark.parametrize("algorithm", ["ES256", "ES384", "EdDSA", "PS256"])
    def test_round_trip(self, algorithm: str) -> None:
        """A key's JWK turns back into the same public key."""
        jwk = DPoPKey.generate(algorithm).public_jwk
        assert public_jwk_from_key(public_key_from_jwk(jwk)) == jwk

    def test_rfc_example_rsa(self) -> None:
        """The RFC 7638 RSA key loads."""
        assert isinstance(public_key_from_jwk(RFC7638_KEY), rsa.RSAPublicKey)

    def test_small_rsa_refused(self) -> None:
        """RSA keys under 2048 bits are refused."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
        with pytest.raises(InvalidRequestError, match="rsa key size"):
            public_key_from_jwk(public_jwk_from_key(key))

    def test_private_member_refused(self) -> None:
        """Any private member is refused."""
        with pytest.raises(InvalidRequestError, match="private keys"):
            public_key_from_jwk({**RFC7638_KEY, "p": "AQAB"})

    def test_not_a_mapping(self) -> None:
        """A list is not a JWK."""
        with pytest.raises(InvalidRequestError, match="json object"):
            public_key_from_jwk([])  # type: ignore[arg-type]

    def test_unsupported_key_object(self) -> None:
        """A P-521 key has no JWK here."""
        with pytest.raises(InvalidRequestError, match="unsupported elliptic curve"):
            public_jwk_from_key(ec.generate_private_key(ec.SECP521R1()))

    def test_unsupported_object(self) -> None:
        """A non-key object is refused."""
        with pytest.raises(InvalidRequestError, match="unsupported key type"):
            public_jwk_from_key(object())


class TestEdgeCases:
    """Inputs that only a hostile or broken client sends."""

    def test_rsa_even_exponent(self) -> None:
        """An RSA key with an invalid exponent is refused."""
        jwk = {**RFC7638_KEY, "e": b64url(b"\x02")}
        with pytest.raises(InvalidRequestError, match="rsa key is invalid"):
            public_key_from_jwk(jwk)

    def test_load_public_jwk_not_a_mapping(self) -> None:
        """A list is not a JWK."""
        with pytest.raises(InvalidRequestError, match="json object"):
            load_public_jwk([])  # type: ignore[arg-type]

    def test_missing_coordinate(self) -> None:
        """A P-256 JWK without y is refused, naming the member."""
        jwk = {k: v for k, v in DPoPKey.generate().public_jwk.items() if k != "y"}
        with pytest.raises(InvalidRequestError, match="member y is missing"):
            load_public_jwk(jwk)
