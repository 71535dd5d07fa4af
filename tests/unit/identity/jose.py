"""
Minting test tokens by hand: any header, any claims, keys generated in the test.

Tokens are built from their parts (not with PyJWT) so that tests can also write
what PyJWT never would: an ``Ed25519`` alg name, padded or non-canonical segments,
``jku`` headers.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gatepass.tokens import public_jwk_from_key

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: dict[str, Any]) -> str:
    """One JSON segment of a compact JWS."""
    return b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def raw_signature(key: PrivateKey, algorithm: str, signing_input: bytes) -> bytes:
    """Sign a JWS signing input with ``key`` as ``algorithm`` says."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(signing_input)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        digest = hashes.SHA384() if algorithm == "ES384" else hashes.SHA256()
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    scheme = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        if algorithm == "PS256"
        else padding.PKCS1v15()
    )
    return key.sign(signing_input, scheme, hashes.SHA256())


def sign_jws(
    key: PrivateKey, header: dict[str, Any], claims: dict[str, Any], algorithm: str
) -> str:
    """A compact JWS of ``claims`` under ``header``, signed with ``key``."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = raw_signature(key, algorithm, signing_input.encode("ascii"))
    return f"{signing_input}.{b64(signature)}"


def generate(algorithm: str) -> PrivateKey:
    """A fresh private key for an algorithm."""
    if algorithm in {"EdDSA", "Ed25519"}:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class IssuerKey:
    """A signing key of a test issuer, with its kid and algorithm."""

    kid: str
    algorithm: str
    key: PrivateKey = field(repr=False)
    use: str | None = "sig"

    @classmethod
    def generate(
        cls, kid: str, algorithm: str = "RS256", use: str | None = "sig"
    ) -> IssuerKey:
        """A fresh key."""
        return cls(kid, algorithm, generate(algorithm), use)

    def jwk(self, **extra: Any) -> dict[str, Any]:
        """The public JWK, with kid and use."""
        jwk: dict[str, Any] = {**public_jwk_from_key(self.key), "kid": self.kid}
        if self.use is not None:
            jwk["use"] = self.use
        jwk.update(extra)
        return jwk

    def sign(
        self,
        claims: dict[str, Any],
        *,
        alg: str | None = None,
        typ: str | None = "JWT",
        **header: Any,
    ) -> str:
        """A token with this key's kid; ``alg`` may lie about the algorithm."""
        full: dict[str, Any] = {"alg": alg or self.algorithm, "kid": self.kid}
        if typ is not None:
            full["typ"] = typ
        full.update(header)
        return sign_jws(self.key, full, claims, self.algorithm)


def jwks(*keys: IssuerKey, **members: Any) -> dict[str, Any]:
    """A JWK Set (or SPIFFE bundle, with members) of public keys."""
    return {"keys": [key.jwk() for key in keys], **members}


def document(value: dict[str, Any]) -> bytes:
    """A JSON document as served."""
    return json.dumps(value).encode("utf-8")
