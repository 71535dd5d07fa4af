"""
The agent's side: DPoP proofs (RFC 9449 §4.2) and agent assertions (RFC 7523 §3).

Used by the agent SDK and by tests. Private keys live only in memory here.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gatepass.clock import SystemClock, to_epoch
from gatepass.errors import InvalidRequestError
from gatepass.tokens.dpop import access_token_hash
from gatepass.tokens.jwk import (
    b64url,
    b64url_decode,
    load_public_jwk,
    public_jwk_from_key,
    thumbprint,
)

__all__ = [
    "DPoPKey",
    "ProofKey",
    "create_assertion",
    "load_private_key",
    "private_jwk",
]

ProofKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

_RSA_BITS = 2048
_COORDINATE_BYTES = {"P-256": 32, "P-384": 48}


def _generate(algorithm: str) -> ProofKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm in {"PS256", "RS256"}:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    raise InvalidRequestError("unsupported dpop algorithm")


def _strip_query(url: str) -> str:
    # RFC 9449 §4.2: htu is the request URI without query and fragment.
    return url.split("#", 1)[0].split("?", 1)[0]


class DPoPKey:
    """
    An in-memory key that signs DPoP proofs, one per task.

    Args:
        private_key: the private key.
        algorithm: its JWS algorithm.
    """

    __slots__ = ("_private_key", "algorithm", "jkt", "public_jwk")

    def __init__(self, private_key: ProofKey, algorithm: str) -> None:
        """Derive the public JWK and its thumbprint."""
        self._private_key = private_key
        self.algorithm = algorithm
        self.public_jwk = public_jwk_from_key(private_key)
        self.jkt = thumbprint(self.public_jwk)

    def __repr__(self) -> str:
        """Show the thumbprint, never the private key."""
        return f"DPoPKey(algorithm={self.algorithm!r}, jkt={self.jkt!r})"

    @property
    def private_key(self) -> ProofKey:
        """The private key, for the agent's own configuration; never send it."""
        return self._private_key

    @classmethod
    def generate(cls, algorithm: str = "ES256") -> DPoPKey:
        """
        Generate a fresh key.

        Args:
            algorithm: ES256 (default), ES384, EdDSA, PS256 or RS256.

        Returns:
            The key.

        Raises:
            InvalidRequestError: the algorithm is not supported.
        """
        return cls(_generate(algorithm), algorithm)

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        now: dt.datetime | None = None,
        jti: str | None = None,
    ) -> str:
        """
        Sign a proof for one request.

        Args:
            method: the HTTP method.
            url: the request URL; query and fragment are dropped.
            access_token: the access token sent with the request; adds ``ath``.
            nonce: the server's latest ``DPoP-Nonce``.
            now: the issue time; the system clock when omitted.
            jti: the proof id; random when omitted.

        Returns:
            The compact JWS for the ``DPoP`` header.
        """
        moment = now if now is not None else SystemClock().now()
        claims: dict[str, Any] = {
            "jti": jti if jti is not None else b64url(secrets.token_bytes(16)),
            "htm": method,
            "htu": _strip_query(url),
            "iat": to_epoch(moment),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(
            claims,
            self._private_key,
            algorithm=self.algorithm,
            headers={"typ": "dpop+jwt", "jwk": self.public_jwk},
        )


def _from_private_jwk(jwk: Mapping[str, Any]) -> ProofKey:
    public = load_public_jwk({k: v for k, v in jwk.items() if k != "d"})
    d_text = jwk.get("d")
    if not isinstance(d_text, str):
        raise InvalidRequestError("jwk is not a private key")
    try:
        d = b64url_decode(d_text)
    except ValueError:
        raise InvalidRequestError("jwk member d is not base64url") from None
    key: ProofKey
    try:
        if public["kty"] == "OKP":
            key = ed25519.Ed25519PrivateKey.from_private_bytes(d)
        else:
            if len(d) != _COORDINATE_BYTES["P-256"]:
                raise ValueError("wrong length")  # noqa: TRY301
            key = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
    except ValueError:
        raise InvalidRequestError("jwk private member d is invalid") from None
    if public_jwk_from_key(key) != public:
        raise InvalidRequestError("jwk private and public members do not match")
    return key


def load_private_key(
    value: str | Mapping[str, Any],
) -> tuple[ProofKey, dict[str, Any], str]:
    """
    Load an agent's private key (P-256 or Ed25519).

    Args:
        value: a PKCS8 (or SEC1) PEM private key, a private JWK, or JWK JSON text.

    Returns:
        The private key, its canonical public JWK and its algorithm.

    Raises:
        InvalidRequestError: the value is not a supported private key; the message
            never contains key material.
    """
    key: ProofKey
    if isinstance(value, str) and "-----BEGIN" in value:
        try:
            loaded = serialization.load_pem_private_key(
                value.strip().encode("utf-8"), password=None
            )
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise InvalidRequestError("private key pem cannot be parsed") from None
        if isinstance(loaded, ed25519.Ed25519PrivateKey) or (
            isinstance(loaded, ec.EllipticCurvePrivateKey)
            and loaded.curve.name == "secp256r1"
        ):
            key = loaded
        else:
            raise InvalidRequestError("unsupported key type")
    else:
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):
                raise InvalidRequestError(
                    "private key is neither a jwk nor a pem"
                ) from None
            if not isinstance(parsed, dict):
                raise InvalidRequestError("jwk must be a json object")
            value = parsed
        if not isinstance(value, Mapping):
            raise InvalidRequestError("jwk must be a json object")
        key = _from_private_jwk(value)
    public = public_jwk_from_key(key)
    algorithm = "EdDSA" if public["kty"] == "OKP" else "ES256"
    return key, public, algorithm


def private_jwk(private_key: ProofKey) -> dict[str, Any]:
    """
    Return the private JWK of a P-256 or Ed25519 key (for agent configuration).

    Args:
        private_key: the key.

    Returns:
        The public members plus ``d``.

    Raises:
        InvalidRequestError: the key type is not supported.
    """
    jwk = public_jwk_from_key(private_key)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return {**jwk, "d": b64url(raw)}
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        length = _COORDINATE_BYTES[jwk["crv"]]
        value = private_key.private_numbers().private_value
        return {**jwk, "d": b64url(value.to_bytes(length, "big"))}
    raise InvalidRequestError("unsupported key type")


def create_assertion(
    private_key: ProofKey,
    *,
    algorithm: str,
    agent_id: str,
    audience: str,
    now: dt.datetime,
    lifetime: dt.timedelta = dt.timedelta(seconds=60),
    jti: str | None = None,
) -> str:
    """
    Sign an agent assertion (RFC 7523 §3): the agent's workload identity.

    Args:
        private_key: the agent's registered private key.
        algorithm: ``ES256`` or ``EdDSA``, the key's algorithm.
        agent_id: the agent id, both ``iss`` and ``sub``.
        audience: the broker's issuer (or token endpoint) URL.
        now: the issue time.
        lifetime: how long the assertion is valid; keep it short.
        jti: the assertion id; random when omitted.

    Returns:
        The compact JWS.
    """
    public = public_jwk_from_key(private_key)
    issued = to_epoch(now)
    claims = {
        "iss": agent_id,
        "sub": agent_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": jti if jti is not None else b64url(secrets.token_bytes(16)),
    }
    return jwt.encode(
        claims,
        private_key,
        algorithm=algorithm,
        headers={"typ": "JWT", "kid": thumbprint(public)},
    )
