"""Build tokens by hand, including ones no honest signer would produce."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import jwt

from gatepass.tokens import b64url


def segment(value: Any) -> str:
    """Return the base64url JSON encoding of a value."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Return a token with an empty signature (the "alg": "none" shape)."""
    return f"{segment(header)}.{segment(claims)}."


def signed(
    header: dict[str, Any], claims: dict[str, Any], key: Any, algorithm: str
) -> str:
    """Sign arbitrary claims with exactly the given extra header members."""
    return jwt.encode(claims, key, algorithm=algorithm, headers=header)


def hmac_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """Return an HS256 token (the algorithm-confusion attack shape), by hand."""
    signing_input = f"{segment({**header, 'alg': 'HS256'})}.{segment(claims)}"
    mac = hmac.digest(secret, signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{b64url(mac)}"
