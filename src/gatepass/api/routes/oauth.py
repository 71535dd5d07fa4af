"""
The OAuth face of the broker.

Metadata (RFC 8414), JWKS, the token endpoint (RFC 8693 + RFC 9449), introspection
(RFC 7662), revocation (RFC 7009) and closing a task. Bodies are parsed here, at
the edge (``api/forms.py``, ``api/inputs.py``); the broker receives typed requests.
"""

from __future__ import annotations

import asyncio
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gatepass.api.bodies import read_body, read_form_body, read_json
from gatepass.api.errors import NO_STORE, error_response
from gatepass.api.forms import (
    parse_form,
    parse_introspection,
    parse_revocation,
    parse_token_exchange,
)
from gatepass.api.inputs import close_reason
from gatepass.api.shapes import task_json
from gatepass.api.tls import client_certificate_thumbprint
from gatepass.broker import Broker, Permission, PresentedTaskToken
from gatepass.errors import GatepassError, InvalidRequestError, PayloadTooLargeError
from gatepass.tokens import DPOP_ALGORITHMS, TOKEN_EXCHANGE
from gatepass.verify import header_values, single_dpop_proof

__all__ = ["TokenEndpointApp", "oauth_routes"]


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def metadata_document(broker: Broker) -> dict[str, object]:
    """Return the RFC 8414 authorization server metadata."""
    issuer = broker.settings.server.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "grant_types_supported": [TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": ["none"],
        "dpop_signing_alg_values_supported": sorted(DPOP_ALGORITHMS),
        "authorization_details_types_supported": ["agent_task"],
        "scopes_supported": broker.catalog.scopes(),
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "service_documentation": broker.settings.server.service_documentation,
    }


async def metadata(request: Request) -> Response:
    """Serve ``/.well-known/oauth-authorization-server``."""
    return JSONResponse(metadata_document(_broker(request)))


async def jwks(request: Request) -> Response:
    """Serve the public signing keys, the next key included."""
    return JSONResponse(
        _broker(request).keys.jwks(), headers={"Cache-Control": "max-age=60"}
    )


_FORM_TYPE = "application/x-www-form-urlencoded"
# RFC 6749 §5.1: a token response is never cached. Built once: the hot path.
_TOKEN_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]


class _Disconnected(Exception):  # noqa: N818 - not an error: the client left
    """The client went away before its body arrived."""


class TokenEndpointApp:
    """
    The token endpoint (RFC 8693 + RFC 9449) as a bare ASGI application.

    Every issuance comes through here, so it skips the framework: one pass over
    the headers, the body read from ``receive`` with the size limit, the response
    sent as two ASGI messages with headers built once. What it checks and answers
    is what the framework route did: the content type (RFC 6749 §3.2), the size
    limit (declared and actual), one ``DPoP`` header (RFC 9449 §4.3), the same
    parsing at the edge, the same error shape, and refusals before parsing audited
    through :meth:`~gatepass.broker.TokenEndpoint.reject`.

    Args:
        broker: the broker.
        gate: the FIFO admission gate for token requests.
    """

    def __init__(self, broker: Broker, gate: asyncio.Semaphore) -> None:
        """Keep the broker and the gate."""
        self._broker = broker
        self._gate = gate
        self._limit = broker.settings.server.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``POST /token``."""
        broker = self._broker
        try:
            try:
                body, proofs = await self._read(scope, receive)
                proof = single_dpop_proof(proofs)
                exchange = parse_token_exchange(parse_form(body))
            except GatepassError as error:
                await broker.tokens.reject(error)
                raise
            # A FIFO gate: at most a few token requests interleave inside the
            # broker. Without it a saturated event loop shares the CPU among every
            # open request, which keeps the mean latency but stretches the tail
            # several-fold.
            async with self._gate:
                answer = await broker.tokens.exchange(
                    exchange,
                    dpop_proof=proof,
                    certificate=client_certificate_thumbprint(scope),
                )
        except _Disconnected:
            return
        except GatepassError as error:
            await error_response(error)(scope, receive, send)
            return
        content = json.dumps(
            answer.body, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *_TOKEN_HEADERS,
                    (b"content-length", str(len(content)).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _read(self, scope: Scope, receive: Receive) -> tuple[bytes, list[str]]:
        content_type, declared, proofs = _token_headers(scope)
        media = content_type.decode("latin-1").split(";")[0]
        if media.strip().lower() != _FORM_TYPE:
            raise InvalidRequestError(f"content type must be {_FORM_TYPE}")
        limit = self._limit
        if declared is not None:
            if not declared.isdigit():
                raise InvalidRequestError("malformed content-length")
            if int(declared) > limit:
                raise PayloadTooLargeError(f"body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"body is larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), proofs


def _token_headers(scope: Scope) -> tuple[bytes, bytes | None, list[str]]:
    # One pass: the first Content-Type and Content-Length (as the framework's
    # Headers.get), and every DPoP value (more than one is refused).
    content_type: bytes | None = None
    declared: bytes | None = None
    proofs: list[str] = []
    for key, value in scope["headers"]:
        name = key.lower()
        if name == b"dpop":
            proofs.append(value.decode("latin-1"))
        elif name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"content-length" and declared is None:
            declared = value
    return content_type or b"", declared, proofs


class _TokenRoute:
    """
    The framework's route to the token endpoint.

    Used by an app mounted without ``create_app``'s dispatch, which sends
    ``POST /token`` straight to the endpoint.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint: TokenEndpointApp = scope["app"].state.token_endpoint
        await endpoint(scope, receive, send)


async def introspect(request: Request) -> Response:
    """Serve RFC 7662 introspection for resource servers holding an api token."""
    broker = _broker(request)
    await broker.callers.authenticate(
        request.headers.get("authorization"), needs=Permission.INTROSPECT
    )
    body = await read_form_body(request, broker.settings.server.max_body_bytes)
    answer = await broker.token_status.introspect(parse_introspection(body))
    return JSONResponse(answer.body, headers=NO_STORE)


async def revoke(request: Request) -> Response:
    """Serve RFC 7009 revocation."""
    broker = _broker(request)
    try:
        body = await read_form_body(request, broker.settings.server.max_body_bytes)
        revocation = parse_revocation(body)
    except GatepassError as error:
        await broker.token_status.reject(error)
        raise
    await broker.token_status.revoke(revocation)
    return Response(status_code=200, headers=NO_STORE)


async def close_task(request: Request) -> Response:
    """Serve ``POST /v1/tasks/{id}/close`` for the agent (DPoP) or an admin."""
    broker = _broker(request)
    limit = broker.settings.server.max_body_bytes
    task_id = str(request.path_params["task_id"])
    authorization = request.headers.get("authorization", "")
    if authorization.partition(" ")[0].lower() == "dpop":
        await read_body(request, limit)
        presented = PresentedTaskToken(
            authorization=authorization,
            dpop_proof=single_dpop_proof(
                header_values(request.scope["headers"], b"dpop")
            ),
            url=f"{broker.settings.server.issuer}/v1/tasks/{task_id}/close",
            certificate=client_certificate_thumbprint(request.scope),
        )
        task = await broker.closing.close_as_agent(task_id, presented)
    else:
        caller = await broker.callers.authenticate(
            authorization, needs=Permission.ADMINISTER
        )
        if request.headers.get("content-type"):
            reason = close_reason(await read_json(request, limit))
        else:
            await read_body(request, limit)
            reason = "closed by admin"
        task = await broker.closing.close_task(
            task_id, actor=caller.actor, reason=reason
        )
    return JSONResponse(task_json(task))


oauth_routes = [
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/jwks.json", jwks, methods=["GET"]),
    Route("/token", _TokenRoute(), methods=["POST"]),
    Route("/introspect", introspect, methods=["POST"]),
    Route("/revoke", revoke, methods=["POST"]),
    Route("/v1/tasks/{task_id}/close", close_task, methods=["POST"]),
]
