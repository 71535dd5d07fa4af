"""
Strict parsing of compact JWS (RFC 7515 §7.1), signatures and their checks.

The token text is split and decoded exactly once; the signature is then checked
against a key and an algorithm the caller pinned, with cryptography (PyJWT's
implementation for RSA). Signing produces exactly what PyJWT produces and verifies.
Time claims are never checked here: PyJWT reads the wall clock, gatepass reads its
injected :class:`~gatepass.clock.Clock`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from jwt.algorithms import get_default_algorithms

from gatepass.tokens.jwk import b64url_decode

__all__ = [
    "MAX_TOKEN_LENGTH",
    "CompactJWS",
    "SigningKey",
    "algorithm_matches",
    "canonical_algorithm",
    "is_numeric_date",
    "parse_compact",
    "sign",
    "verify_signature",
]

# Tokens are small; refusing large input early bounds the work an attacker can cause.
MAX_TOKEN_LENGTH = 16 * 1024

# RFC 8725 §3.1: only asymmetric algorithms exist here; "none" and HS* are absent, so
# no allow-list passed by a caller can ever reach them. ECDSA and EdDSA are checked
# with cryptography directly (PyJWT's wrappers cost ~15 us per signature on the hot
# path); RSA, rare in DPoP proofs, goes through PyJWT's implementation.
_ALGORITHMS = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name in {"PS256", "RS256"}
}
# RFC 7518 §3.4: the curve, the byte size of R and S, and the hash of each ECDSA
# algorithm.
_ECDSA: dict[str, tuple[type[ec.EllipticCurve], int, ec.ECDSA]] = {
    "ES256": (ec.SECP256R1, 32, ec.ECDSA(hashes.SHA256())),
    "ES384": (ec.SECP384R1, 48, ec.ECDSA(hashes.SHA384())),
}

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# RFC 9864 §2.2: "Ed25519" is the fully specified name of the algorithm RFC 8037 §3.1
# calls "EdDSA" when the key is an Ed25519 key. Every OKP key here is an Ed25519 key,
# so the two names denote one algorithm and accepting both widens nothing: the
# algorithm is still the one pinned to the key. PyJWT knows only "EdDSA", so the
# Ed25519 signature is checked with cryptography directly (see verify_signature).
_ALIASES = {"Ed25519": "EdDSA"}


def _reject_constant(name: str) -> None:
    # RFC 8259 §6: NaN and Infinity are not JSON numbers.
    raise ValueError(name)


# One decoder for every call: json.loads with options builds a new one each time.
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """
    The decoded parts of a compact JWS, not yet verified.

    Attributes:
        header: the protected header.
        payload: the decoded payload bytes.
        signing_input: ``BASE64URL(header) || "." || BASE64URL(payload)`` as ASCII.
        signature: the decoded signature bytes.
    """

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    def claims(self) -> dict[str, Any]:
        """
        Parse the payload as a JSON object.

        Returns:
            The claims set.

        Raises:
            ValueError: the payload is not a JSON object.
        """
        return _json_object(self.payload)


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        # RFC 7515 §2 / RFC 8259 §8.1: the JSON is UTF-8 (no BOM, no UTF-16); a
        # decoding error is a ValueError too.
        value = _JSON_DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ValueError("not json") from None
    if not isinstance(value, dict):
        raise ValueError("not a json object")  # noqa: TRY004 - one error for bad input
    return value


def parse_compact(token: object) -> CompactJWS:
    """
    Split and decode a compact JWS without trusting any of it.

    Args:
        token: the serialized token as received.

    Returns:
        The decoded parts.

    Raises:
        ValueError: the value is not a canonical compact JWS with a JSON header, or
            its header lists critical extensions (RFC 7515 §4.1.11: none are
            understood here, so they must be rejected).
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise ValueError("not a token")
    if not token.isascii():
        raise ValueError("not ascii")
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not three segments")
    header_text, payload_text, signature_text = parts
    header = _json_object(b64url_decode(header_text))
    if "crit" in header:
        raise ValueError("critical header")
    payload = b64url_decode(payload_text)
    signature = b64url_decode(signature_text)
    signing_input = f"{header_text}.{payload_text}".encode("ascii")
    return CompactJWS(header, payload, signing_input, signature)


def canonical_algorithm(name: object) -> str | None:
    """
    Return the one name gatepass pins for a JWS algorithm name.

    Args:
        name: an ``alg`` value as found in a header or a JWK.

    Returns:
        ``"EdDSA"`` for ``"Ed25519"`` (RFC 9864), the name itself for any other
        string, None for a value that is not a string.
    """
    if not isinstance(name, str):
        return None
    return _ALIASES.get(name, name)


def algorithm_matches(header_algorithm: object, pinned: str) -> bool:
    """
    Tell whether a token's ``alg`` names the algorithm pinned to the key.

    The pinned algorithm always decides (RFC 8725 §3.1); the header may only spell
    the same algorithm, in its RFC 8037 or its RFC 9864 name.

    Args:
        header_algorithm: the token's ``alg`` header, untrusted.
        pinned: the algorithm pinned to the verification key.

    Returns:
        True when both name the same algorithm.
    """
    return canonical_algorithm(header_algorithm) == canonical_algorithm(pinned)


def verify_signature(jws: CompactJWS, key: object, algorithm: str) -> bool:
    """
    Check the signature of a parsed JWS with a pinned key and algorithm.

    Args:
        jws: the parsed token.
        key: a cryptography public key of the algorithm's type.
        algorithm: the pinned JWS algorithm (never the token's own claim);
            ``Ed25519`` and ``EdDSA`` are the same algorithm.

    Returns:
        Whether the signature is valid.
    """
    try:
        ecdsa = _ECDSA.get(algorithm)
        if ecdsa is not None:
            return _verify_ecdsa(jws, key, *ecdsa)
        if canonical_algorithm(algorithm) == "EdDSA":
            return _verify_ed25519(jws, key)
        implementation = _ALGORITHMS.get(algorithm)
        if implementation is None:
            return False
        return implementation.verify(jws.signing_input, key, jws.signature)
    except (InvalidSignature, ValueError, TypeError, AttributeError):
        # A bad signature, or a key of the wrong family for the algorithm, is a
        # failed verification, never an unexpected exception.
        return False


def _verify_ecdsa(
    jws: CompactJWS,
    key: object,
    curve: type[ec.EllipticCurve],
    size: int,
    scheme: ec.ECDSA,
) -> bool:
    signature = jws.signature
    # RFC 7518 §3.4: the signature is R || S, each exactly the curve's size, and the
    # key must be on the algorithm's curve (RFC 8725 §3.1).
    if (
        not isinstance(key, ec.EllipticCurvePublicKey)
        or not isinstance(key.curve, curve)
        or len(signature) != 2 * size
    ):
        return False
    der = encode_dss_signature(
        int.from_bytes(signature[:size], "big"),
        int.from_bytes(signature[size:], "big"),
    )
    key.verify(der, jws.signing_input, scheme)  # raises InvalidSignature
    return True


def _verify_ed25519(jws: CompactJWS, key: object) -> bool:
    # RFC 8037 §3.1: the 64-byte Ed25519 signature, as is.
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return False
    key.verify(jws.signature, jws.signing_input)  # raises InvalidSignature
    return True


def sign(signing_input: bytes, key: SigningKey, algorithm: str) -> bytes:
    """
    Sign a JWS signing input with one of the broker's keys.

    Args:
        signing_input: ``BASE64URL(header) || "." || BASE64URL(payload)`` as ASCII.
        key: the private key; its type must match ``algorithm``.
        algorithm: ``ES256`` or ``EdDSA``.

    Returns:
        The JWS signature bytes: R || S for ES256 (RFC 7518 §3.4), the raw
        Ed25519 signature for EdDSA (RFC 8037 §3.1).

    Raises:
        ValueError: the key does not fit the algorithm.
    """
    if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        curve, size, scheme = _ECDSA[algorithm]
        if not isinstance(key.curve, curve):
            raise ValueError("key is not on the algorithm's curve")
        # cryptography returns DER; JWS carries the two integers, fixed width.
        r, s = decode_dss_signature(key.sign(signing_input, scheme))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(signing_input)
    raise ValueError("key does not fit the algorithm")


def is_numeric_date(value: object) -> bool:
    """
    Tell whether a claim value is an RFC 7519 §2 NumericDate.

    Args:
        value: a decoded claim value.

    Returns:
        True for finite ints and floats (booleans excluded).
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def unverified_issuer(token: str) -> str | None:
    """
    Read a token's ``iss`` without verifying it, only to choose whose key verifies.

    Parsing is as strict as verification (canonical base64url, JSON objects), so a
    token that could be read two ways is never routed one way and verified another.
    Nothing read here is trusted.

    Returns:
        The ``iss`` claim, or None when the token is malformed or has none.
    """
    typ_and_claims = unverified_claims(token)
    if typ_and_claims is None:
        return None
    issuer = typ_and_claims[1].get("iss")
    return issuer if isinstance(issuer, str) else None


def unverified_claims(token: str) -> tuple[str | None, dict[str, Any]] | None:
    """
    Read a token's header ``typ`` and its claims without verifying them.

    For routing only (which verifier, which audience): nothing read here is
    trusted until the token verifies.

    Returns:
        ``(typ, claims)``, or None when the token is not a canonical compact JWS
        with a JSON object payload.
    """
    try:
        parsed = parse_compact(token)
        claims = parsed.claims()
    except ValueError:
        return None
    typ = parsed.header.get("typ")
    return (typ if isinstance(typ, str) else None), claims
