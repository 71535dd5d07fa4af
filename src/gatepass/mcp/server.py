"""
Protecting an MCP server built with the official Python SDK.

:func:`protect` wraps the SDK's streamable-HTTP application in one ASGI layer::

    request ─▶ RFC 9728 metadata? serve it (no token)
            ─▶ DPoP token + proof for this server (GatepassMiddleware: audience,
               expiry, key binding, this exact request, revocation pushed by
               the broker)                                    401 + challenge
            ─▶ POST: read the JSON-RPC body; routing headers must agree with it
                                                              400 -32020
            ─▶ tools/call: the tool's action must be in the token's scope
                                                              403 insufficient_scope,
                                                                  scope="<action>"
            ─▶ the SDK, with the verified identity in the request

Authorization is decided on every request, as the MCP authorization
specification requires (the 2026-07-28 protocol is stateless); the SDK's own
``TokenVerifier`` hook is not used, because it sees only the token string and
could never check the DPoP proof. Tool handlers read who is calling with
:func:`current_access`; the SDK's own ``request.user`` is set too, so its session
binding holds sessions to the agent that opened them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from gatepass.errors import (
    AccessDeniedError,
    ConfigurationError,
    GatepassError,
    HeaderMismatchError,
    InvalidRequestError,
    PayloadTooLargeError,
    TokenError,
)
from gatepass.mcp.messages import HEADER_MISMATCH, Call, read_calls
from gatepass.verify import (
    ASGIApp,
    GatepassMiddleware,
    Message,
    Receive,
    ResourceVerifier,
    Scope,
    Send,
    VerifiedAccess,
    require_scope,
    verified_access,
)

__all__ = ["MCPGuard", "current_access", "protect"]

# The SDK's own limit for one request body (mcp.server.transport_security).
DEFAULT_MAX_BODY = 4 * 1024 * 1024
# JSON-RPC 2.0 §5.1: the body could not be parsed.
_PARSE_ERROR = -32700


class _StreamableServer(Protocol):
    def streamable_http_app(self, *, streamable_http_path: str = ...) -> Any: ...  # noqa: ANN401


def _sdk_user(access: VerifiedAccess, issuer: str) -> object:
    """Return the SDK's authenticated user for a verified request."""
    # Imported on first use: `mcp` costs over a second to import, and a process
    # that only imports gatepass should not pay for it.
    from mcp.server.auth.middleware.bearer_auth import (  # noqa: PLC0415
        AuthenticatedUser,
    )
    from mcp.server.auth.provider import AccessToken  # noqa: PLC0415

    return AuthenticatedUser(
        AccessToken(
            # The SDK keeps the token in its user; gatepass never keeps a token
            # after verifying it, so the SDK is given the token's id instead.
            token=access.jti,
            client_id=access.agent_id,
            scopes=sorted(access.scopes),
            expires_at=int(access.expires_at.timestamp()),
            resource=access.audience,
            subject=access.agent_id,
            claims={"iss": issuer, "txn": access.task_id, "act": list(access.actors)},
        )
    )


class MCPGuard:
    """
    An ASGI layer that authorizes every MCP request with gatepass tokens.

    Args:
        app: the MCP SDK's streamable-HTTP application.
        verifier: checks tokens whose audience is this MCP server.
        tool_scopes: maps each tool name to the action (target scope) a call
            needs; a tool that is not listed cannot be called (deny by default).
        base_scope: an action every request needs, also named in the first
            ``401``'s ``scope`` so a client knows what to ask for; None when any
            valid token for this server will do.
        path: the path of the MCP endpoint, where bodies are read.
        max_body: the largest request body read, in bytes.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: ResourceVerifier,
        *,
        tool_scopes: Mapping[str, str],
        base_scope: str | None = None,
        path: str = "/mcp",
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        """Check the mapping and build the token layer."""
        for tool, action in tool_scopes.items():
            if not tool or not action or " " in action:
                raise ConfigurationError("tool scopes map tool names to one action")
        self.app = app
        self.verifier = verifier
        self.tool_scopes = dict(tool_scopes)
        self._path = path
        self._max_body = max_body
        self._gate = GatepassMiddleware(
            self._authorized,
            verifier,
            required_scope=(lambda _method, _path: base_scope),
        )
        self._sdk_user_ready = True

    def __repr__(self) -> str:
        """Show the audience and the mapped tools."""
        return (
            f"MCPGuard(audience={self.verifier.audience!r}, "
            f"tools={sorted(self.tool_scopes)!r})"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope."""
        await self._gate(scope, receive, send)

    async def _authorized(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only here once the token verified (or for lifespan and other scopes).
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access = verified_access(scope)
        self._attach_sdk_user(scope, access)
        if scope["method"] != "POST" or scope["path"] != self._path:
            await self.app(scope, receive, send)
            return
        try:
            body, replay = await self._read_body(receive)
            calls = read_calls(body, scope.get("headers", ()))
            self._authorize_calls(calls, access)
        except HeaderMismatchError as error:
            await _json_rpc_error(send, HEADER_MISMATCH, error.detail)
            return
        except PayloadTooLargeError as error:
            await _json_rpc_error(send, _PARSE_ERROR, error.detail, status=413)
            return
        except InvalidRequestError as error:
            await _json_rpc_error(send, _PARSE_ERROR, error.detail)
            return
        except GatepassError as error:
            await self._gate.refuse(send, error)
            return
        await self.app(scope, replay, send)

    def _authorize_calls(self, calls: list[Call], access: VerifiedAccess) -> None:
        for call in calls:
            if call.method != "tools/call":
                continue
            action = self.tool_scopes.get(call.name or "")
            if action is None:
                # Deny by default: a tool nobody mapped to an action is not
                # callable, whatever the token grants.
                raise AccessDeniedError("tool is not mapped to an action")
            require_scope(access, action)

    def _attach_sdk_user(self, scope: Scope, access: VerifiedAccess) -> None:
        if not self._sdk_user_ready:
            return
        try:
            scope["user"] = _sdk_user(access, self.verifier.issuer)
        except ImportError:
            # The guard also protects ASGI apps without the SDK installed.
            self._sdk_user_ready = False

    async def _read_body(self, receive: Receive) -> tuple[bytes, Receive]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise InvalidRequestError("request ended before its body")
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self._max_body:
                raise PayloadTooLargeError("request body is too large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return body, replay


async def _json_rpc_error(
    send: Send, code: int, message: str, *, status: int = 400
) -> None:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def protect(
    server: _StreamableServer | ASGIApp,
    verifier: ResourceVerifier,
    *,
    tool_scopes: Mapping[str, str],
    base_scope: str | None = None,
    path: str = "/mcp",
    max_body: int = DEFAULT_MAX_BODY,
) -> MCPGuard:
    """
    Protect an MCP server with gatepass: one call, every request authorized.

    Args:
        server: an ``MCPServer`` (its streamable-HTTP app is built at ``path``)
            or the ASGI app its ``streamable_http_app()`` returned.
        verifier: checks tokens whose audience is this server (see
            :meth:`~gatepass.verify.ResourceVerifier.for_broker`).
        tool_scopes: maps each tool name to the action a call needs.
        base_scope: an action every request needs; None for any valid token.
        path: the MCP endpoint's path.
        max_body: the largest request body read, in bytes.

    Returns:
        The ASGI application to serve (uvicorn, hypercorn, granian).

    Raises:
        ConfigurationError: a tool maps to no action or to several.
    """
    build = getattr(server, "streamable_http_app", None)
    app: ASGIApp = build(streamable_http_path=path) if callable(build) else server  # type: ignore[assignment]
    return MCPGuard(
        app,
        verifier,
        tool_scopes=tool_scopes,
        base_scope=base_scope,
        path=path,
        max_body=max_body,
    )


def current_access(context: object) -> VerifiedAccess:
    """
    Return who is calling a tool: the verified gatepass access of its request.

    Args:
        context: the tool's ``Context`` (``ctx``), its ``request_context``, the
            Starlette ``Request``, or an ASGI scope.

    Returns:
        The agent, task, scopes and ``act`` chain of the token.

    Raises:
        TokenError: the request did not pass through :class:`MCPGuard`.
    """
    target: object = context
    for attribute in ("request_context", "request"):
        try:
            found = getattr(target, attribute, None)
        except ValueError:
            # The SDK's Context raises outside a request.
            found = None
        if found is not None:
            target = found
    scope = target if isinstance(target, Mapping) else getattr(target, "scope", None)
    if not isinstance(scope, Mapping):
        raise TokenError("request was not verified")
    return verified_access(dict(scope))
