"""Signing broker tokens (task tokens, RFC 9068 access tokens) with the key ring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from gatepass.tokens.keys import KeyRing

__all__ = ["JWTIssuer"]


class JWTIssuer:
    """
    Sign JWTs with the ring's current key.

    The header is exactly ``{alg, kid, typ}``: the ``kid`` lets verifiers pick the
    key and ``typ`` separates token kinds (RFC 8725 §3.11, RFC 9068 §2.1). Assign a
    new ring to :attr:`ring` after a rotation; signing reads it once per token.

    Args:
        ring: the signing keys.
        issuer: the ``iss`` claim of every token.
    """

    __slots__ = ("issuer", "ring")

    def __init__(self, ring: KeyRing, *, issuer: str) -> None:
        """Keep the ring and the issuer."""
        self.ring = ring
        self.issuer = issuer

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """
        Sign a claims set.

        Args:
            claims: the claims; ``sub``, ``aud``, ``iat``, ``exp``, ``jti`` and the
                rest come from the caller. ``iss`` is always set to the issuer.
            typ: the header ``typ`` (``at+jwt``, ``txntoken+jwt``).

        Returns:
            The compact JWS.
        """
        ring = self.ring
        payload = {**claims, "iss": self.issuer}
        return jwt.encode(
            payload,
            ring.sign_key,
            algorithm=ring.signing_algorithm,
            headers={"kid": ring.signing_kid, "typ": typ},
        )
