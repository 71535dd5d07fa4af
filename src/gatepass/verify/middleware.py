"""
An ASGI middleware that admits only requests with a valid gatepass access token.

It is pure ASGI (no framework import), so it wraps Starlette, FastAPI, Litestar or
any other ASGI application. Failures are answered as RFC 9449 §7.1 and RFC 6750 §3
describe: ``401`` (``403`` for ``insufficient_scope``) with a JSON body and a
``WWW-Authenticate: DPoP`` challenge. On success the
:class:`~gatepass.verify.VerifiedAccess` is put in ``scope["state"]["gatepass"]``
(``request.state.gatepass`` in Starlette).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from gatepass.errors import (
    DPoPNonceRequiredError,
    DPoPProofError,
    GatepassError,
    InsufficientScopeError,
    InvalidRequestError,
    TokenError,
)
from gatepass.tokens import DPOP_ALGORITHMS
from gatepass.verify.access import VerifiedAccess, require_scope
from gatepass.verify.verifier import ResourceVerifier

__all__ = ["ASGIApp", "GatepassMiddleware", "ScopeRule", "verified_access"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ScopeRule = Callable[[str, str], str | None]

_ALGS = " ".join(sorted(DPOP_ALGORITHMS))
# RFC 6750 §3: a WebSocket close code for "policy violation" (RFC 6455 §7.4.1).
_POLICY_VIOLATION = 1008


def _quoted(text: str) -> str:
    # RFC 9110 §5.6.4: a quoted-string may not hold a bare quote or backslash.
    return text.replace("\\", "").replace('"', "'")


def _challenge(error: GatepassError | None, *, action: str | None = None) -> str:
    if error is None:
        # RFC 6750 §3.1: a request without credentials gets no error code.
        return f'DPoP algs="{_ALGS}"'
    parts = [
        f'error="{error.code}"',
        f'error_description="{_quoted(error.detail)}"',
    ]
    if action is not None:
        parts.append(f'scope="{_quoted(action)}"')
    parts.append(f'algs="{_ALGS}"')
    return "DPoP " + ", ".join(parts)


def _status_for(error: GatepassError) -> int:
    if isinstance(error, InsufficientScopeError):
        return 403
    # RFC 9449 §7.1: a bad proof at a resource server is a 401 challenge.
    if isinstance(error, TokenError | DPoPProofError):
        return 401
    return 400


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [
        value.decode("latin-1")
        for key, value in scope.get("headers", ())
        if key.lower() == name
    ]


def _request_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return str(scope.get("path", "/"))


class GatepassMiddleware:
    """
    Require a valid, DPoP-bound gatepass access token on every non-public request.

    The request URL checked against the proof's ``htu`` is the verifier's
    ``public_url`` (or ``public_url`` given here) plus the request path: the
    ``Host`` and ``X-Forwarded-*`` headers are chosen by the caller and never used.

    Args:
        app: the application to protect.
        verifier: checks tokens for this resource server.
        required_scope: maps ``(method, path)`` to the action a request needs, or
            None when any valid token will do.
        public_paths: exact paths served without a token (``"/"``, ``"/healthz"``).
        public_url: the external URL of the application's root; the verifier's
            ``public_url`` when omitted.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: ResourceVerifier,
        *,
        required_scope: ScopeRule | None = None,
        public_paths: Iterable[str] = (),
        public_url: str | None = None,
    ) -> None:
        """Keep the configuration."""
        self.app = app
        self.verifier = verifier
        self._required_scope = required_scope
        self._public_paths = frozenset(public_paths)
        self._public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on or answer the challenge."""
        kind = scope["type"]
        if kind not in {"http", "websocket"} or scope["path"] in self._public_paths:
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            # No token checks are defined for WebSocket upgrades yet: refuse them.
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            return
        method = str(scope["method"])
        path = _request_path(scope)
        authorization = _header_values(scope, b"authorization")
        proofs = _header_values(scope, b"dpop")
        if not authorization:
            error = TokenError("missing access token")
            await self._refuse(send, error, _challenge(None))
            return
        action: str | None = None
        try:
            if len(authorization) > 1:
                raise InvalidRequestError("more than one authorization header")
            if len(proofs) > 1:
                # RFC 9449 §4.3 item 1: exactly one DPoP header.
                raise DPoPProofError("more than one dpop header")
            url = self._url_for(path)
            # Verification may fetch keys or ask the broker: keep the loop free.
            verified = await asyncio.to_thread(
                self.verifier.verify,
                method,
                url,
                authorization[0],
                proofs[0] if proofs else None,
            )
            if self._required_scope is not None:
                action = self._required_scope(method, str(scope["path"]))
                if action is not None:
                    require_scope(verified, action)
        except GatepassError as error:
            await self._refuse(send, error, _challenge(error, action=action))
            return
        state = scope.setdefault("state", {})
        state["gatepass"] = verified
        await self.app(scope, receive, send)

    def _url_for(self, path: str) -> str:
        if self._public_url is not None:
            return self._public_url.rstrip("/") + "/" + path.lstrip("/")
        return self.verifier.url_for(path)

    @staticmethod
    async def _refuse(send: Send, error: GatepassError, challenge: str) -> None:
        body = json.dumps(
            {"error": error.code, "error_description": error.detail}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            (b"www-authenticate", challenge.encode("latin-1", "replace")),
        ]
        if isinstance(error, DPoPNonceRequiredError):
            headers.append((b"dpop-nonce", error.nonce.encode("latin-1", "replace")))
        await send(
            {
                "type": "http.response.start",
                "status": _status_for(error),
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})


def verified_access(scope: Scope) -> VerifiedAccess:
    """
    Return the verified access the middleware stored for a request.

    Args:
        scope: the ASGI scope (``request.scope`` in Starlette).

    Returns:
        The verified access.

    Raises:
        TokenError: the request did not pass through :class:`GatepassMiddleware`.
    """
    found = scope.get("state", {}).get("gatepass")
    if not isinstance(found, VerifiedAccess):
        raise TokenError("request was not verified")
    return found
