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
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from gatepass.errors import GatepassError, TokenError
from gatepass.verify.access import VerifiedAccess, require_scope
from gatepass.verify.challenges import challenge_headers, error_body, refusal_status
from gatepass.verify.headers import presented_credentials
from gatepass.verify.verifier import ResourceVerifier

__all__ = ["ASGIApp", "GatepassMiddleware", "ScopeRule", "verified_access"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ScopeRule = Callable[[str, str], str | None]

# RFC 6750 §3: a WebSocket close code for "policy violation" (RFC 6455 §7.4.1).
_POLICY_VIOLATION = 1008


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
        action: str | None = None
        try:
            presented = presented_credentials(scope.get("headers", ()))
            url = self._url_for(_request_path(scope))
            # Verification may fetch keys or ask the broker: keep the loop free.
            verified = await asyncio.to_thread(
                self.verifier.verify_presented, method, url, presented
            )
            if self._required_scope is not None:
                action = self._required_scope(method, str(scope["path"]))
                if action is not None:
                    require_scope(verified, action)
        except GatepassError as error:
            await self._refuse(send, error, action)
            return
        state = scope.setdefault("state", {})
        state["gatepass"] = verified
        await self.app(scope, receive, send)

    def _url_for(self, path: str) -> str:
        if self._public_url is not None:
            return self._public_url.rstrip("/") + "/" + path.lstrip("/")
        return self.verifier.url_for(path)

    @staticmethod
    async def _refuse(send: Send, error: GatepassError, action: str | None) -> None:
        body = error_body(error)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *challenge_headers(error, scope=action),
        ]
        status = refusal_status(error)
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
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
