"""
The OAuth face of the broker.

Metadata (RFC 8414), JWKS, the token endpoint (RFC 8693 + RFC 9449), introspection
(RFC 7662), revocation (RFC 7009) and closing a task. Bodies are parsed here, at
the edge (``api/forms.py``, ``api/inputs.py``); the broker receives typed requests.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
from gatepass.errors import GatepassError
from gatepass.tokens import DPOP_ALGORITHMS, TOKEN_EXCHANGE
from gatepass.verify import header_values, single_dpop_proof

__all__ = ["oauth_routes"]


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


async def token(request: Request) -> Response:
    """Serve the token endpoint: open a task or issue an access token."""
    broker = _broker(request)
    try:
        body = await read_form_body(request, broker.settings.server.max_body_bytes)
        proof = single_dpop_proof(header_values(request.scope["headers"], b"dpop"))
        exchange = parse_token_exchange(parse_form(body))
    except GatepassError as error:
        await broker.tokens.reject(error)
        return error_response(error)
    try:
        # A FIFO gate: at most a few token requests interleave inside the broker.
        # Without it a saturated event loop shares the CPU among every open
        # request, which keeps the mean latency but stretches the tail several-fold.
        async with request.app.state.token_gate:
            answer = await broker.tokens.exchange(
                exchange,
                dpop_proof=proof,
                certificate=client_certificate_thumbprint(request.scope),
            )
    except GatepassError as error:
        return error_response(error)
    return JSONResponse(answer.body, headers=NO_STORE)


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
    Route("/token", token, methods=["POST"]),
    Route("/introspect", introspect, methods=["POST"]),
    Route("/revoke", revoke, methods=["POST"]),
    Route("/v1/tasks/{task_id}/close", close_task, methods=["POST"]),
]
