"""
Certificate-bound tokens (RFC 8705 §3): ``cnf.x5t#S256``, a second proof of possession.

Where the broker terminates TLS and the agent presents a client certificate (an
X.509-SVID, say), the tokens it is issued carry the certificate's SHA-256
thumbprint beside the DPoP key's; a resource server (or the broker itself) accepts
such a token only over a connection authenticated by that same certificate.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from gatepass.errors import TokenError
from gatepass.tokens.jwk import b64url

__all__ = [
    "X5T_CLAIM",
    "bound_thumbprint",
    "certificate_thumbprint",
    "check_certificate_binding",
]

# RFC 8705 §3.1: the confirmation method of a certificate-bound token.
X5T_CLAIM = "x5t#S256"


def certificate_thumbprint(der: bytes) -> str:
    """
    Return the RFC 8705 §3.1 thumbprint of a certificate.

    Args:
        der: the certificate, DER-encoded.

    Returns:
        ``base64url(SHA-256(DER))`` without padding.
    """
    return b64url(hashlib.sha256(der).digest())


def bound_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """Return the ``cnf.x5t#S256`` of verified claims, or None if not cert-bound."""
    confirmation = claims.get("cnf")
    if not isinstance(confirmation, Mapping):
        return None
    value = confirmation.get(X5T_CLAIM)
    return value if isinstance(value, str) and value else None


def check_certificate_binding(expected: str | None, presented: str | None) -> None:
    """
    Refuse a certificate-bound token presented over another connection.

    Args:
        expected: the token's ``cnf.x5t#S256``; None for a token without one.
        presented: the thumbprint of the connection's client certificate, if any.

    Raises:
        TokenError: the token is certificate-bound and the connection presented no
            certificate, or another one (RFC 8705 §3: ``invalid_token``).
    """
    if expected is None:
        return
    if presented is None:
        raise TokenError("token is bound to a client certificate; none presented")
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise TokenError("token is bound to another client certificate")
