"""
How a refused access token is answered: status, ``WWW-Authenticate: DPoP``, body.

Every place that checks a gatepass access token answers a failure alike: the
:class:`~gatepass.verify.GatepassMiddleware`, the credential-injecting proxy, and
the broker's own endpoints that take a task token. The challenge follows RFC 9449
§7.1 and RFC 6750 §3::

    DPoP algs="ES256 ES384 EdDSA PS256 RS256"                       no token sent
    DPoP error="invalid_token", error_description="...", algs="..."  a bad token
    DPoP error="insufficient_scope", error_description="...",
         scope="write", algs="..."                                   too little scope

``algs`` is always every algorithm DPoP proofs may use
(:data:`gatepass.tokens.DPOP_ALGORITHMS`), so a client learns the real list from
any of the three. ``resource_metadata`` (RFC 9728 §5.1) names the URL of the
resource's protected-resource metadata, which the
:class:`~gatepass.verify.GatepassMiddleware` always publishes.
"""

from __future__ import annotations

import json

from gatepass.errors import (
    AccessDeniedError,
    DPoPNonceRequiredError,
    DPoPProofError,
    GatepassError,
    InsufficientScopeError,
    TokenError,
    TokenMissingError,
)
from gatepass.tokens import DPOP_ALGORITHMS
from gatepass.verify.headers import Header

__all__ = ["challenge_headers", "error_body", "refusal_status", "www_authenticate"]

_ALGS = " ".join(sorted(DPOP_ALGORITHMS))

# RFC 6750 §3: error, error_description and scope values use only %x20-21 /
# %x23-5B / %x5D-7E. That set is also a quoted-string without any quoted-pair
# (RFC 9110 §5.6.4), so a value can never end the string or the header early.
_ALLOWED = frozenset(chr(code) for code in range(0x20, 0x7F)) - {'"', "\\"}


def _allowed(character: str) -> str:
    if character in _ALLOWED:
        return character
    if character == '"':
        return "'"
    if character == "\\":
        return ""
    # A control character (CR and LF among them) would split the header: a space
    # keeps the words apart. Anything beyond ASCII shows as a question mark.
    return " " if character < " " or character == "\x7f" else "?"


def _quoted(text: str) -> str:
    return '"' + "".join(_allowed(character) for character in text) + '"'


def www_authenticate(
    error: GatepassError | None = None,
    *,
    scope: str | None = None,
    resource_metadata: str | None = None,
) -> str:
    """
    Return the ``WWW-Authenticate`` value for a refused access token.

    Args:
        error: why the token was refused; None (or a
            :class:`~gatepass.errors.TokenMissingError`) when the request sent no
            credentials, which RFC 6750 §3.1 answers without an error code.
        scope: the action the request needs, named with ``insufficient_scope``
            (RFC 6750 §3); the error's own ``scope`` when omitted.
        resource_metadata: the URL of the resource server's protected-resource
            metadata (RFC 9728 §5.1).

    Returns:
        The challenge, ASCII only, every value a quoted-string.
    """
    parts: list[str] = []
    if scope is None and isinstance(error, InsufficientScopeError):
        scope = error.scope
    if error is not None and not isinstance(error, TokenMissingError):
        parts.append(f"error={_quoted(error.code)}")
        parts.append(f"error_description={_quoted(error.detail)}")
    if scope is not None:
        parts.append(f"scope={_quoted(scope)}")
    if resource_metadata is not None:
        parts.append(f"resource_metadata={_quoted(resource_metadata)}")
    parts.append(f'algs="{_ALGS}"')
    return "DPoP " + ", ".join(parts)


def challenge_headers(
    error: GatepassError,
    *,
    scope: str | None = None,
    resource_metadata: str | None = None,
) -> tuple[Header, ...]:
    """
    Return the headers that answer a refused access token, as ASGI headers.

    Args:
        error: why the token was refused.
        scope: see :func:`www_authenticate`.
        resource_metadata: see :func:`www_authenticate`.

    Returns:
        ``WWW-Authenticate``, and ``DPoP-Nonce`` when the error demands a nonce
        (RFC 9449 §9).
    """
    challenge = www_authenticate(
        error, scope=scope, resource_metadata=resource_metadata
    )
    headers: tuple[Header, ...] = ((b"www-authenticate", challenge.encode("ascii")),)
    if isinstance(error, DPoPNonceRequiredError):
        nonce = error.nonce.encode("latin-1", "replace")
        headers = (*headers, (b"dpop-nonce", nonce))
    return headers


def refusal_status(error: GatepassError) -> int:
    """
    Return the HTTP status a resource server answers an access error with.

    Args:
        error: why the request was refused.

    Returns:
        ``403`` for ``insufficient_scope`` and any other access denial (a valid
        token that may not do this), ``401`` for a bad token or proof (RFC 9449
        §7.1 makes a bad proof, and a nonce demand, a challenge at a resource
        server), ``400`` for anything else wrong with the request.
    """
    if isinstance(error, AccessDeniedError):
        return 403
    if isinstance(error, TokenError | DPoPProofError):
        return 401
    return 400


def error_body(error: GatepassError) -> bytes:
    """
    Return the JSON body of an answer, in the broker's error shape.

    Args:
        error: the error answered; its detail must be a fixed text.

    Returns:
        ``{"error": code, "error_description": detail}`` as bytes.
    """
    return json.dumps({"error": error.code, "error_description": error.detail}).encode()
