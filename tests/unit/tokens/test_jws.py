"""Tests for the strict compact JWS parser."""

from __future__ import annotations

import dataclasses

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gatepass.tokens import DPoPKey, b64url
from gatepass.tokens.jws import parse_compact, sign, verify_signature

from . import forge


class TestParseCompact:
    """Parsing and signature checks."""

    def test_nan_is_not_json(self) -> None:
        """NaN in a payload is refused as not JSON (RFC 8259 §6)."""
        # The payload is the text {"exp":NaN}, which json.loads accepts by default.
        jws = parse_compact(f"{forge.segment({})}.eyJleHAiOk5hTn0.")
        with pytest.raises(ValueError, match="not json"):
            jws.claims()

    def test_unknown_algorithm_never_verifies(self) -> None:
        """An algorithm outside the implemented set is a failed verification."""
        key = DPoPKey.generate("ES256")
        jws = parse_compact(key.proof("GET", "https://a.example/"))
        assert verify_signature(jws, key.private_key.public_key(), "HS256") is False

    def test_wrong_key_family(self) -> None:
        """An Ed25519 key for an ES256 signature fails quietly."""
        key = DPoPKey.generate("ES256")
        jws = parse_compact(key.proof("GET", "https://a.example/"))
        other = ed25519.Ed25519PrivateKey.generate().public_key()
        assert verify_signature(jws, other, "ES256") is False


class TestSignatures:
    """Signatures made and checked with cryptography, compatible with PyJWT's."""

    @pytest.mark.parametrize("algorithm", ["ES256", "ES384", "EdDSA"])
    def test_pyjwt_signatures_verify(self, algorithm: str) -> None:
        """A token PyJWT signed verifies, and a flipped signature bit does not."""
        key = DPoPKey.generate(algorithm)
        token = jwt.encode({"a": 1}, key.private_key, algorithm=algorithm)
        public = key.private_key.public_key()
        assert verify_signature(parse_compact(token), public, algorithm) is True
        jws = parse_compact(token)
        flipped = bytes([jws.signature[0] ^ 1]) + jws.signature[1:]
        tampered = dataclasses.replace(jws, signature=flipped)
        assert verify_signature(tampered, public, algorithm) is False

    @pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
    def test_signatures_verify_with_pyjwt(self, algorithm: str) -> None:
        """sign() writes what PyJWT's verifier accepts (R || S for ES256)."""
        key = DPoPKey.generate(algorithm)
        signing_input = f"{forge.segment({'alg': algorithm})}.{forge.segment({})}"
        private = key.private_key
        assert isinstance(
            private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        )
        signature = sign(signing_input.encode(), private, algorithm)
        token = f"{signing_input}.{b64url(signature)}"
        public = private.public_key()
        assert jwt.decode(token, public, algorithms=[algorithm]) == {}

    def test_ecdsa_signature_of_the_wrong_length(self) -> None:
        """RFC 7518 §3.4: R || S of any other length is refused, not reinterpreted."""
        key = DPoPKey.generate("ES256")
        jws = parse_compact(key.proof("GET", "https://a.example/"))
        public = key.private_key.public_key()
        signature = jws.signature
        for wrong in (signature[:-1], signature + b"\0", b"\0" + signature):
            padded = dataclasses.replace(jws, signature=wrong)
            assert verify_signature(padded, public, "ES256") is False

    def test_curve_is_pinned_to_the_algorithm(self) -> None:
        """An ES384 key never checks an ES256 signature (RFC 8725 §3.1)."""
        key = DPoPKey.generate("ES384")
        jws = parse_compact(key.proof("GET", "https://a.example/"))
        public = key.private_key.public_key()
        assert verify_signature(jws, public, "ES384") is True
        assert verify_signature(jws, public, "ES256") is False

    def test_rsa_goes_through_pyjwt(self) -> None:
        """RS256 and PS256 proofs still verify, and only with their own algorithm."""
        for algorithm in ("RS256", "PS256"):
            key = DPoPKey.generate(algorithm)
            jws = parse_compact(key.proof("GET", "https://a.example/"))
            public = key.private_key.public_key()
            assert verify_signature(jws, public, algorithm) is True
            other = "PS256" if algorithm == "RS256" else "RS256"
            assert verify_signature(jws, public, other) is False

    def test_sign_refuses_a_key_of_another_algorithm(self) -> None:
        """sign() never signs with a key that does not fit the algorithm."""
        p384 = ec.generate_private_key(ec.SECP384R1())
        with pytest.raises(ValueError, match="curve"):
            sign(b"x", p384, "ES256")
        with pytest.raises(ValueError, match="does not fit"):
            sign(b"x", ed25519.Ed25519PrivateKey.generate(), "ES256")
        with pytest.raises(ValueError, match="does not fit"):
            sign(b"x", p384, "EdDSA")

    def test_bom_and_utf16_are_not_json(self) -> None:
        """RFC 8259 §8.1: JSON texts are UTF-8 without a byte order mark."""
        for raw in (b"\xef\xbb\xbf{}", "{}".encode("utf-16")):
            with pytest.raises(ValueError, match="not json"):
                parse_compact(f"{b64url(raw)}.{forge.segment({})}.")
            jws = parse_compact(f"{forge.segment({})}.{b64url(raw)}.")
            with pytest.raises(ValueError, match="not json"):
                jws.claims()
