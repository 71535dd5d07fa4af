"""Signing broker tokens (task tokens, RFC 9068 access tokens) with the key ring."""

from __future__ import annotations

import datetime as dt
import json
from calendar import timegm
from collections.abc import Mapping
from typing import Any

from gatepass.tokens.jwk import b64url
from gatepass.tokens.jws import sign
from gatepass.tokens.keys import KeyRing

__all__ = ["JWTIssuer"]

# The JSON PyJWT writes (RFC 7515 §7.1 needs no particular form): compact, ASCII.
# NaN and Infinity are not JSON (RFC 8259 §6) and no verifier here would accept
# them, so they are refused when signing rather than written.
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_HEADERS_KEPT = 16
# The registered time claims PyJWT converts from datetimes (RFC 7519 §4.1.4-6).
_TIME_CLAIMS = ("exp", "iat", "nbf")


class JWTIssuer:
    """
    Sign JWTs with the ring's current key.

    The header is exactly ``{alg, kid, typ}``: the ``kid`` lets verifiers pick the
    key and ``typ`` separates token kinds (RFC 8725 §3.11, RFC 9068 §2.1). Assign a
    new ring to :attr:`ring` after a rotation; signing reads it once per token.

    Tokens are what ``jwt.encode`` writes for the same claims (header members in
    sorted order, compact JSON), but the encoded header is kept per key and type
    and the signature is made with cryptography directly.

    Args:
        ring: the signing keys.
        issuer: the ``iss`` claim of every token.
    """

    __slots__ = ("_headers", "issuer", "ring")

    def __init__(self, ring: KeyRing, *, issuer: str) -> None:
        """Keep the ring and the issuer."""
        self.ring = ring
        self.issuer = issuer
        self._headers: dict[tuple[str, str, str], str] = {}

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """
        Sign a claims set.

        Args:
            claims: the claims; ``sub``, ``aud``, ``iat``, ``exp``, ``jti`` and the
                rest come from the caller. ``iss`` is always set to the issuer.
                ``exp``, ``iat`` and ``nbf`` may be aware datetimes, as with PyJWT.
            typ: the header ``typ`` (``at+jwt``, ``txntoken+jwt``).

        Returns:
            The compact JWS.

        Raises:
            ValueError: a claim is NaN or infinite.
            TypeError: a claim is not JSON-serialisable.
        """
        ring = self.ring
        algorithm, kid = ring.signing_algorithm, ring.signing_kid
        header = self._headers.get((algorithm, kid, typ))
        if header is None:
            header = self._header(algorithm, kid, typ)
        payload = {**claims, "iss": self.issuer}
        for name in _TIME_CLAIMS:
            value = payload.get(name)
            if isinstance(value, dt.datetime):
                payload[name] = timegm(value.utctimetuple())
        signing_input = f"{header}.{b64url(_JSON.encode(payload).encode('ascii'))}"
        signature = sign(signing_input.encode("ascii"), ring.sign_key, algorithm)
        return f"{signing_input}.{b64url(signature)}"

    def _header(self, algorithm: str, kid: str, typ: str) -> str:
        header = b64url(
            _JSON.encode({"alg": algorithm, "kid": kid, "typ": typ}).encode("ascii")
        )
        # A ring change (rotation) brings a new kid; old entries are dropped
        # wholesale rather than tracked, as they are few and cheap to rebuild.
        if len(self._headers) >= _HEADERS_KEPT:
            self._headers.clear()
        self._headers[(algorithm, kid, typ)] = header
        return header
