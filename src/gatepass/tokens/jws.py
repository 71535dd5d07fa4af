"""
Strict parsing of compact JWS (RFC 7515 §7.1) and signature checks through PyJWT.

The token text is split and decoded exactly once; the signature is then checked with
PyJWT's algorithm implementation against a key and an algorithm the caller pinned.
Time claims are never checked here: PyJWT reads the wall clock, gatepass reads its
injected :class:`~gatepass.clock.Clock`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms

from gatepass.tokens.jwk import b64url_decode

__all__ = [
    "MAX_TOKEN_LENGTH",
    "CompactJWS",
    "is_numeric_date",
    "parse_compact",
    "verify_signature",
]

# Tokens are small; refusing large input early bounds the work an attacker can cause.
MAX_TOKEN_LENGTH = 16 * 1024

# RFC 8725 §3.1: only asymmetric algorithms exist here; "none" and HS* are absent, so
# no allow-list passed by a caller can ever reach them.
_ALGORITHMS = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name in {"ES256", "ES384", "EdDSA", "PS256", "RS256"}
}


def _reject_constant(name: str) -> None:
    # RFC 8259 §6: NaN and Infinity are not JSON numbers.
    raise ValueError(name)


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
        value = json.loads(data, parse_constant=_reject_constant)
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


def verify_signature(jws: CompactJWS, key: object, algorithm: str) -> bool:
    """
    Check the signature of a parsed JWS with a pinned key and algorithm.

    Args:
        jws: the parsed token.
        key: a cryptography public key of the algorithm's type.
        algorithm: the pinned JWS algorithm (never the token's own claim).

    Returns:
        Whether the signature is valid.
    """
    implementation = _ALGORITHMS.get(algorithm)
    if implementation is None:
        return False
    try:
        return implementation.verify(jws.signing_input, key, jws.signature)
    except (ValueError, TypeError, AttributeError):
        # A key of the wrong family for the algorithm is a failed verification,
        # never an unexpected exception.
        return False


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
