"""Render a ``GatepassError`` as the one JSON error shape every endpoint uses."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gatepass.errors import (
    AuthenticationError,
    DPoPNonceRequiredError,
    GatepassError,
    InsufficientScopeError,
    TokenError,
)
from gatepass.verify import www_authenticate

__all__ = ["NO_STORE", "RETRY_AFTER_SECONDS", "error_response", "handle_gatepass_error"]

# RFC 6749 §5.1: responses carrying tokens (and their errors) must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# RFC 9110 §10.2.3: a 503 says when to try again. A database or target that is
# back serves the next request at once, so a short wait is the honest answer.
RETRY_AFTER_SECONDS = 2


def error_response(error: GatepassError) -> JSONResponse:
    """
    Return the JSON response for ``error``.

    The body is ``{"error": code, "error_description": detail}``; a nonce challenge
    carries ``DPoP-Nonce`` (RFC 9449 §8) and a 401 carries ``WWW-Authenticate``.
    """
    headers = dict(NO_STORE)
    if error.http_status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if isinstance(error, DPoPNonceRequiredError):
        headers["DPoP-Nonce"] = error.nonce
    if isinstance(error, TokenError | InsufficientScopeError):
        # The same DPoP challenge as the verifier and the proxy (RFC 9449 §7.1).
        headers["WWW-Authenticate"] = www_authenticate(error)
    elif isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="gatepass"'
    return JSONResponse(
        {"error": error.code, "error_description": error.detail, **error.fields()},
        status_code=error.http_status,
        headers=headers,
    )


async def handle_gatepass_error(_request: Request, exc: Exception) -> Response:
    """Starlette exception handler for the whole error tree."""
    if not isinstance(exc, GatepassError):  # pragma: no cover - registration contract
        raise exc
    return error_response(exc)
