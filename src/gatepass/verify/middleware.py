"""
An ASGI middleware that admits only requests with a valid gatepass access token.

It is pure ASGI (no framework import), so it wraps Starlette, FastAPI, Litestar or
any other ASGI application, the same way::

    app.add_middleware(GatepassMiddleware, verifier=verifier)    # Starlette, FastAPI
    app = GatepassMiddleware(app, verifier)                       # any ASGI app

It serves the resource's RFC 9728 metadata at its well-known path, without a
token. Failures are answered as RFC 9449 §7.1, RFC 6750 §3 and RFC 9728 §5.1
describe: ``401`` (``403`` for ``insufficient_scope``, with the ``scope`` needed)
with a JSON body and a ``WWW-Authenticate: DPoP`` challenge that names the
metadata URL in ``resource_metadata``. On success the
:class:`~gatepass.verify.VerifiedAccess` is put in ``scope["state"]["gatepass"]``
(``request.state.gatepass`` in Starlette); a handler that calls
:func:`~gatepass.verify.require_scope` and raises before answering gets the same
``403`` challenge. The verifier's revocation stream starts with the ASGI lifespan
(or with the first request, for servers that run none). A streaming answer
(``text/event-stream``, as MCP servers send) is ended when its token is revoked
or expires: revocation cuts live sessions, not only new requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import anyio

from gatepass.errors import GatepassError, InsufficientScopeError, TokenError
from gatepass.verify.access import VerifiedAccess, require_scope
from gatepass.verify.challenges import challenge_headers, error_body, refusal_status
from gatepass.verify.headers import presented_credentials
from gatepass.verify.mtls import client_certificate_thumbprint
from gatepass.verify.verifier import ResourceVerifier

__all__ = [
    "ASGIApp",
    "GatepassMiddleware",
    "Message",
    "Receive",
    "Scope",
    "ScopeRule",
    "Send",
    "send_refusal",
    "verified_access",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ScopeRule = Callable[[str, str], str | None]

# RFC 6750 §3: a WebSocket close code for "policy violation" (RFC 6455 §7.4.1).
_POLICY_VIOLATION = 1008


def _is_event_stream(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"text/event-stream"
    return False


def _request_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return str(scope.get("path", "/"))


async def send_refusal(
    send: Send,
    error: GatepassError,
    *,
    scope: str | None = None,
    resource_metadata: str | None = None,
) -> None:
    """
    Answer a refused request with its status, challenge and JSON body.

    Args:
        send: the ASGI send callable; no response may have started.
        error: why the request was refused.
        scope: the action needed, for ``insufficient_scope``; the error's own
            ``scope`` when omitted.
        resource_metadata: the RFC 9728 metadata URL to name in the challenge.
    """
    if scope is None and isinstance(error, InsufficientScopeError):
        scope = error.scope
    body = error_body(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *challenge_headers(error, scope=scope, resource_metadata=resource_metadata),
    ]
    status = refusal_status(error)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Answer:
    """
    One response on its way out: whether it started, and its end if it streams.

    A streaming answer (``text/event-stream``) may outlive the token that opened
    it; a watcher then cancels the handler when the token is revoked or expires,
    as the proxy closes its streams.
    """

    def __init__(self, send: Send, outlived: Callable[[], Awaitable[bool]]) -> None:
        self._send = send
        self._outlived = outlived
        self._host = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self._cut = False
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if self._host is not None and _is_event_stream(message.get("headers", ())):
                self._watcher = asyncio.create_task(self._watch())
        await self._send(message)

    async def _watch(self) -> None:
        if await self._outlived() and self._host is not None:
            self._cut = True
            self._host.cancel()

    def was_cut(self) -> bool:
        """Tell whether the cancellation is ours, and absorb it if so."""
        if not self._cut or self._host is None:
            return False
        self._host.uncancel()
        return True

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


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
            None when any valid token will do. The action is also named in the
            ``401`` challenge of a request that sent no token, so a client knows
            what to ask for first.
        public_paths: exact paths served without a token (``"/"``, ``"/healthz"``).
        public_url: the external URL of the application's root; the verifier's
            ``public_url`` when omitted.
        serve_metadata: serve the RFC 9728 metadata document at its well-known
            path (``verifier.metadata.path``).
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: ResourceVerifier,
        *,
        required_scope: ScopeRule | None = None,
        public_paths: Iterable[str] = (),
        public_url: str | None = None,
        serve_metadata: bool = True,
    ) -> None:
        """Keep the configuration."""
        self.app = app
        self.verifier = verifier
        self._required_scope = required_scope
        self._public_paths = frozenset(public_paths)
        self._public_url = public_url
        self._metadata_path = verifier.metadata.path if serve_metadata else None
        self._metadata_body = verifier.metadata.body()
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on or answer the challenge."""
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if kind not in {"http", "websocket"} or scope["path"] in self._public_paths:
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            # No token checks are defined for WebSocket upgrades yet: refuse them.
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            return
        if scope["path"] == self._metadata_path:
            await self._serve_metadata(scope, send)
            return
        if not self._started:
            self._started = True
            await self.verifier.start()
        method = str(scope["method"])
        action: str | None = None
        if self._required_scope is not None:
            action = self._required_scope(method, str(scope["path"]))
        try:
            verified = await self.authenticate(scope)
            if action is not None:
                require_scope(verified, action)
        except GatepassError as error:
            await self.refuse(send, error, scope=action)
            return
        state = scope.setdefault("state", {})
        state["gatepass"] = verified
        await self._call_guarded(scope, receive, send, verified)

    async def authenticate(self, scope: Scope) -> VerifiedAccess:
        """
        Verify the token and proof of one HTTP request.

        Args:
            scope: the request's ASGI scope.

        Returns:
            The verified access.

        Raises:
            GatepassError: the token, proof or revocation check failed.
        """
        presented = presented_credentials(
            scope.get("headers", ()),
            certificate=client_certificate_thumbprint(scope),
        )
        url = self._url_for(_request_path(scope))
        method = str(scope["method"])
        if not self.verifier.needs_io(presented.token):
            return self.verifier.verify_presented(method, url, presented)
        # Verification may fetch keys or ask the broker: keep the loop free.
        return await asyncio.to_thread(
            self.verifier.verify_presented, method, url, presented
        )

    async def refuse(
        self, send: Send, error: GatepassError, *, scope: str | None = None
    ) -> None:
        """
        Answer a refused request with this resource's challenge.

        Args:
            send: the ASGI send callable.
            error: why the request was refused.
            scope: the action needed, for ``insufficient_scope``.
        """
        await send_refusal(
            send, error, scope=scope, resource_metadata=self.verifier.metadata.url
        )

    async def _call_guarded(
        self, scope: Scope, receive: Receive, send: Send, verified: VerifiedAccess
    ) -> None:
        answer = _Answer(send, lambda: self._outlived(verified))
        try:
            await self.app(scope, receive, answer.send)
        except InsufficientScopeError as error:
            # A handler found the token short of an action: answer the step-up
            # challenge, unless it had already begun its own answer.
            if answer.started:
                raise
            await self.refuse(send, error)
        except asyncio.CancelledError:
            if not answer.was_cut():
                raise
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            answer.stop()

    async def _outlived(self, verified: VerifiedAccess) -> bool:
        remaining = (verified.expires_at - self.verifier.clock.now()).total_seconds()
        feed = self.verifier.revocations
        if feed is not None:
            await feed.wait_revoked(verified.jti, remaining)
        else:
            await anyio.sleep(max(remaining, 0.0))
        return True

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup" and not self._started:
                self._started = True
                await self.verifier.start()
            elif message["type"] == "lifespan.shutdown":
                await self.verifier.aclose()
            return message

        return wrapped

    async def _serve_metadata(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in {"GET", "HEAD"}:
            await send(
                {
                    "type": "http.response.start",
                    "status": 405,
                    "headers": [(b"allow", b"GET, HEAD"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        body = self._metadata_body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # Public metadata, read by browser-based clients too.
                    (b"access-control-allow-origin", b"*"),
                    (b"cache-control", b"max-age=300"),
                ],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b"" if scope["method"] == "HEAD" else body,
            }
        )

    def _url_for(self, path: str) -> str:
        if self._public_url is not None:
            return self._public_url.rstrip("/") + "/" + path.lstrip("/")
        return self.verifier.url_for(path)


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
