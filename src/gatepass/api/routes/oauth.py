"""
The OAuth face of the broker.

Metadata (RFC 8414), JWKS, the token endpoint (RFC 8693 + RFC 9449), introspection
(RFC 7662) and revocation (RFC 7009).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_body, read_form_body, read_json
from gatepass.api.errors import NO_STORE, error_response
from gatepass.api.shapes import task_json
from gatepass.broker import Runtime
from gatepass.errors import DPoPProofError, GatepassError, InvalidRequestError
from gatepass.store import ApiRole

__all__ = ["oauth_routes"]


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def metadata_document(runtime: Runtime) -> dict[str, object]:
    """Return the RFC 8414 authorization server metadata."""
    issuer = runtime.settings.server.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "grant_types_supported": ["urn:ietf:params:oauth:grant-type:token-exchange"],
        "token_endpoint_auth_methods_supported": ["none"],
        "dpop_signing_alg_values_supported": [
            "ES256",
            "ES384",
            "EdDSA",
            "PS256",
            "RS256",
        ],
        "authorization_details_types_supported": ["agent_task"],
        "scopes_supported": runtime.broker.catalog.scopes(),
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "service_documentation": "https://github.com/gatepass/gatepass/blob/main/docs/api.md",
    }


async def metadata(request: Request) -> Response:
    """Serve ``/.well-known/oauth-authorization-server``."""
    return JSONResponse(metadata_document(_runtime(request)))


async def jwks(request: Request) -> Response:
    """Serve the public signing keys, the next key included."""
    ring = _runtime(request).broker.issuer.ring
    return JSONResponse(ring.jwks(), headers={"Cache-Control": "max-age=60"})


def _single_dpop(request: Request) -> str | None:
    proofs = request.headers.getlist("dpop")
    if len(proofs) > 1:
        # RFC 9449 §4.3 item 1: exactly one DPoP header.
        raise DPoPProofError("more than one dpop header")
    return proofs[0] if proofs else None


async def token(request: Request) -> Response:
    """Serve the token endpoint: open a task or issue an access token."""
    runtime = _runtime(request)
    broker = runtime.broker
    try:
        body = await read_form_body(request, runtime.settings.server.max_body_bytes)
        proof = _single_dpop(request)
    except GatepassError as error:
        await broker.record_rejection("token.request", error)
        return error_response(error)
    try:
        # A FIFO gate: at most a few token requests interleave inside the broker.
        # Without it a saturated event loop shares the CPU among every open
        # request, which keeps the mean latency but stretches the tail several-fold.
        async with request.app.state.token_gate:
            answer = await broker.token(body, dpop_proof=proof)
    except GatepassError as error:
        return error_response(error)
    return JSONResponse(answer.body, headers=NO_STORE)


async def introspect(request: Request) -> Response:
    """Serve RFC 7662 introspection for resource servers holding an api token."""
    runtime = _runtime(request)
    await runtime.admin.authenticate(
        request.headers.get("authorization"),
        roles=frozenset({ApiRole.ADMIN, ApiRole.INTROSPECT, ApiRole.PROXY}),
    )
    body = await read_form_body(request, runtime.settings.server.max_body_bytes)
    answer = await runtime.status.introspect(body)
    return JSONResponse(answer.body, headers=NO_STORE)


async def revoke(request: Request) -> Response:
    """Serve RFC 7009 revocation."""
    runtime = _runtime(request)
    try:
        body = await read_form_body(request, runtime.settings.server.max_body_bytes)
    except GatepassError as error:
        await runtime.broker.record_rejection("token.revoke", error)
        raise
    await runtime.status.revoke_token(body)
    return Response(status_code=200, headers=NO_STORE)


async def close_task(request: Request) -> Response:
    """Serve ``POST /v1/tasks/{id}/close`` for the agent (DPoP) or an admin."""
    runtime = _runtime(request)
    task_id = request.path_params["task_id"]
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "dpop":
        await read_body(request, runtime.settings.server.max_body_bytes)
        url = f"{runtime.settings.server.issuer}/v1/tasks/{task_id}/close"
        task = await runtime.broker.close_task_as_agent(
            task_id,
            access_token=credential.strip(),
            dpop_proof=_single_dpop(request),
            url=url,
        )
    else:
        caller = await runtime.admin.authenticate(request.headers.get("authorization"))
        task = await runtime.broker.close_task(
            task_id, actor=caller.actor, reason=await _close_reason(request, runtime)
        )
    return JSONResponse(task_json(task))


async def _close_reason(request: Request, runtime: Runtime) -> str:
    """Return the admin's ``{"reason": ...}`` (optional, at most 200 characters)."""
    if not request.headers.get("content-type"):
        await read_body(request, runtime.settings.server.max_body_bytes)
        return "closed by admin"
    payload = await read_json(request, runtime.settings.server.max_body_bytes)
    reason = (
        payload.get("reason", "closed by admin") if isinstance(payload, dict) else None
    )
    if not isinstance(reason, str) or not 0 < len(reason) <= 200:
        raise InvalidRequestError("reason must be a string of 1 to 200 characters")
    return reason


oauth_routes = [
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/jwks.json", jwks, methods=["GET"]),
    Route("/token", token, methods=["POST"]),
    Route("/introspect", introspect, methods=["POST"]),
    Route("/revoke", revoke, methods=["POST"]),
    Route("/v1/tasks/{task_id}/close", close_task, methods=["POST"]),
]
